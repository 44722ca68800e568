"""The administrators' console: how fast its views answer over a large store, and how well its
knowledge-gap topics match real topics.

    python -m bench.admin [--ratings 100000]   fill a store (in a temporary folder) with answers,
        ratings, reviews and hand-offs from realistic questions over 90 days, then time the JSON API
        behind each view in process (aiohttp test client: HTTP, session check, SQL, JSON) and print
        one JSON line per view: cold (first request) and warm median / max over 5 requests.
    python -m bench.admin --tune   cluster labelled questions with the retrieval encoder at several
        distance thresholds and print pairwise precision / recall / F1 of "same topic" per set:
        our guide question sets (topic = the expected guide) and the shared NCP dev questions
        (topic = the expected answer; most are alone, so this set measures over-merging), and
        bench/data/gap_topics.tsv: questions on subjects the guides do not cover, written the way
        citizens type, labelled by subject (what the knowledge-gap page groups).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = {"gap_topics": ROOT / "bench" / "data" / "gap_topics.tsv",  # citizen-style questions no guide covers
        "guides": ROOT / "knowledge_base" / "eval" / "questions.tsv",
        "guides_citizen": ROOT / "knowledge_base" / "eval" / "questions_citizen.tsv",
        "ncp_dev": ROOT.parent / "shared" / "eval" / "ncp_dev_queries.tsv"}
THRESHOLDS = (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8)


def labelled(path: Path) -> list[tuple[str, str]]:
    """(question, topic): the topic column, or the first expected guide / answer."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["query"], (r.get("topic") or r.get("expected") or "").split("|")[0]) for r in rows
            if r.get("query") and (r.get("topic") or r.get("expected"))]


def pair_scores(labels, truth) -> dict[str, float]:
    from collections import Counter

    def pairs(groups):
        return sum(n * (n - 1) // 2 for n in Counter(groups).values())
    together = pairs(list(zip(labels, truth)))
    predicted, actual = pairs(labels), pairs(truth)
    p = together / predicted if predicted else 1.0
    r = together / actual if actual else 1.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r) if p + r else 0, 3)}


def tune(index: str, names: list[str] | None = None) -> None:
    import numpy as np

    from assistant.admin.gaps import cluster
    from index_builder.retriever import Retriever

    retriever = Retriever(index)
    for name, path in SETS.items():
        if names and name not in names:
            continue
        if not path.exists():
            print(json.dumps({"set": name, "skipped": f"{path} not found"}))
            continue
        rows = labelled(path)
        vecs = retriever.topic_vectors([q for q, _ in rows])
        truth = [t for _, t in rows]
        for threshold in THRESHOLDS:
            labels = cluster(vecs, threshold)
            sizes = np.bincount(labels)
            print(json.dumps({"set": name, "questions": len(rows), "topics_true": len(set(truth)),
                              "threshold": threshold, "topics": int(len(sizes)), "largest": int(sizes.max()),
                              **pair_scores(labels, truth)}, ensure_ascii=False), flush=True)


def questions() -> list[str]:
    out = []
    for path in SETS.values():
        if path.exists():
            out += [q for q, _ in labelled(path)]
    return out


def fill(store_path: Path, n_ratings: int, seed: int = 7) -> dict[str, int]:
    """Answers (1.5 per rating), ratings (30% 差评), hand-offs and reviews over the last 90 days."""
    from assistant.admin.accounts import Admin
    from assistant.admin.review import Reviews
    from assistant.stores import Store

    rng = random.Random(seed)
    pool = questions()
    docs = [f"guide-{i:03d}" for i in range(120)]
    store = Store(store_path)
    now = time.time()
    n_answers = n_ratings * 3 // 2
    bad_ids = []
    with store.transaction() as db:
        for i in range(n_answers):
            at = now - rng.random() * 90 * 86400
            sender = f"web-{i // 3:07d}"  # three answers a conversation
            store.record_answer(f"a{i}", sender, rng.choice(pool), rng.sample(docs, 3), rng.random() > 0.2,
                                "answer", at=at, text="根据《指南》：请携带身份证原件到社区事务受理服务中心办理。", db=db)
            if i < n_ratings:
                rating = "bad" if rng.random() < 0.3 else "good"
                store._rate(db, f"a{i}", store.key(sender), sender, rating, "没说清楚" if rating == "bad" else None,
                            f"client-{i % 500}", at + 30)
                if rating == "bad":
                    bad_ids.append(f"a{i}")
            if i % 30 == 0:
                store_handoff = (sender, at + 60)
                db.execute("INSERT INTO handoff (sender_id, summary, created_at, sender_key, at) VALUES (?,?,?,?,?)",
                           (sender, "{}", "", store.key(sender), store_handoff[1]))
    reviews = Reviews(store)
    admin = Admin("bench", "admin")
    for answer_id in bad_ids[:2000]:
        reviews.change(admin, answer_id, "整改中", note="已转指南编辑")
    return {"answers": n_answers, "ratings": n_ratings, "bad": len(bad_ids), "reviewed": min(2000, len(bad_ids))}


async def time_views(store_path: Path, index: str, admins: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from web.server import Config, make_app

    cfg = Config(store=str(store_path), index=index, tickets=str(store_path.with_name("tickets.db")),
                 intake_model=str(store_path.with_name("no-model")), allow_ephemeral_key=True, token="x",
                 gap_warm_interval=0)
    client = TestClient(TestServer(make_app(cfg)))
    await client.start_server()
    try:
        for _ in range(100):  # the index loads in the background; gaps need it
            if (await (await client.get("/healthz")).json())["index_loaded"]:
                break
            await asyncio.sleep(0.5)
        # what the server's background task does every 5 minutes: embed the new gap questions
        from assistant.admin import gaps
        from assistant.stores import Store
        from index_builder.retriever import Retriever

        t0 = time.perf_counter()
        now = time.time()
        embedded = gaps.warm(Store(store_path), Retriever(index), now - 90 * 86400, now + 86400)
        print(json.dumps({"gap_questions_embedded": embedded, "seconds": round(time.perf_counter() - t0, 1)}),
              flush=True)
        r = await client.post("/admin/login", data={"name": "bench", "password": "bench password"},
                              allow_redirects=False)
        assert r.status == 303, r.status
        first_bad = await (await client.get("/api/admin/ratings")).json()
        views = {"overview": "/api/admin/overview?{r}", "ratings": "/api/admin/ratings?{r}",
                 "ratings_filtered": "/api/admin/ratings?{r}&status=整改中",
                 "rating_detail": f"/api/admin/ratings/{first_bad['items'][0]['answer_id']}",
                 "gaps": "/api/admin/gaps?{r}", "gaps_by_count": "/api/admin/gaps?{r}&sort=count",
                 "tickets": "/api/admin/tickets?{r}", "export_ratings": "/api/admin/export/ratings.csv?{r}"}
        today = time.strftime("%Y-%m-%d")
        for (name, url), days in ((v, d) for d in (30, 90) for v in views.items()):
            since = time.strftime("%Y-%m-%d", time.localtime(time.time() - (days - 1) * 86400))
            url = url.format(r=f"since={since}&until={today}")
            times = []
            for _ in range(6):
                t0 = time.perf_counter()
                resp = await client.get(url)
                await resp.read()
                times.append(time.perf_counter() - t0)
                assert resp.status == 200, (name, resp.status)
            print(json.dumps({"view": name, "range_days": days, "cold_ms": round(times[0] * 1000),
                              "warm_p50_ms": round(statistics.median(times[1:]) * 1000),
                              "warm_max_ms": round(max(times[1:]) * 1000)}), flush=True)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.admin")
    ap.add_argument("--ratings", type=int, default=100_000)
    ap.add_argument("--index", default=str(ROOT / "build" / "indexes" / "kb"))
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--sets", nargs="*", choices=list(SETS), help="with --tune: only these question sets")
    args = ap.parse_args(argv)
    if args.tune:
        tune(args.index, args.sets)
        return 0
    import os

    from assistant.admin.accounts import Credentials

    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "assistant.db"
        t0 = time.perf_counter()
        filled = fill(store_path, args.ratings)
        print(json.dumps({"filled": filled, "seconds": round(time.perf_counter() - t0, 1),
                          "store_mb": round(store_path.stat().st_size / 2**20, 1)}), flush=True)
        admins = Path(tmp) / "admins.txt"
        Credentials(admins).add("bench", "bench password")
        os.environ["ASSISTANT_ADMINS"] = str(admins)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        asyncio.run(time_views(store_path, args.index, admins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
