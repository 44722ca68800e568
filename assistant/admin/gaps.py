"""Knowledge gaps: the questions the assistant could not answer well, grouped into topics.

A question is a gap when its answer was given without confidence (or the question was declined
as out of scope), or was rated 差评 (unless an appeal against the rating was upheld), or was the
last answer before the conversation asked for an agent (转人工 within HANDOFF_WINDOW_S). Questions are stored masked; equal texts (after
normalisation) are counted together, then the newest MAX_TEXTS distinct ones are embedded with
the retriever's encoder, centred on the index's mean passage vector (Retriever.topic_vectors;
cached in the store by text hash), and clustered with average linkage on cosine distance, cut at
`threshold`. A topic is labelled by its medoid question.
"""
from __future__ import annotations

import hashlib
import re
import time
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..stores import Store
from .review import STATUS_SQL, UPHELD
from .schema import china_time, ensure

HANDOFF_WINDOW_S = 30 * 60
MAX_TEXTS = 1000  # distinct questions clustered per request (about 0.3 s on 2 cores); older ones are counted
THRESHOLD = 0.55  # cosine distance of centred vectors where topics are cut (best F1 on all labelled sets: bench/admin.py --tune)
EXAMPLES = 5
REASONS = {"unconfident": "无把握", "bad": "差评", "handoff": "转人工"}
_NOISE = re.compile(r"[\s\u3000，。！？、；：,.!?;:~～…\"'“”‘’()（）【】\[\]]+")


class Embedder(Protocol):
    version: str

    def topic_vectors(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class Question:
    text: str
    count: int = 0
    latest: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, at: float, reasons: list[str]) -> None:
        self.count += 1
        self.latest = max(self.latest, at)
        for r in reasons:
            self.reasons[r] = self.reasons.get(r, 0) + 1


def normal_key(text: str) -> str:
    return _NOISE.sub("", text).casefold()


def gap_questions(store: Store, t0: float, t1: float) -> list[Question]:
    """Distinct gap questions asked (or, for 差评, rated) in [t0, t1), newest first."""
    queries = {  # reason -> SQL of (answer id, question, time) rows; each reads an index range
        "unconfident": "SELECT answer_id, question, at FROM answer WHERE at >= :t0 AND at < :t1 AND confident = 0",
        "bad": (f"SELECT a.answer_id, a.question, a.at FROM rating r JOIN answer a USING (answer_id) "
                f"LEFT JOIN review v USING (answer_id) WHERE r.first_at >= :t0 AND r.first_at < :t1 "
                f"AND r.rating = 'bad' AND {STATUS_SQL} != :upheld"),
        "handoff": ("SELECT a.answer_id, a.question, a.at FROM handoff h JOIN answer a ON a.answer_id = "
                    "(SELECT a2.answer_id FROM answer a2 WHERE a2.sender_key = h.sender_key AND a2.at <= h.at "
                    "AND a2.at >= h.at - :window ORDER BY a2.at DESC LIMIT 1) "
                    "WHERE h.at >= :t0 AND h.at < :t1 + :window AND h.sender_key IS NOT NULL AND a.at >= :t0 AND a.at < :t1"),
    }
    params = {"upheld": UPHELD, "t0": t0, "t1": t1, "window": HANDOFF_WINDOW_S}
    answers: dict[str, tuple[str, float, list[str]]] = {}
    with closing(ensure(store).connection()) as db:
        for reason, sql in queries.items():
            for answer_id, text, at in db.execute(sql, params):
                answers.setdefault(answer_id, (text, at, []))[2].append(reason)
    found: dict[str, Question] = {}
    for text, at, reasons in answers.values():
        key = normal_key(text)
        if key:
            found.setdefault(key, Question(text)).add(at, reasons)
    return sorted(found.values(), key=lambda q: -q.latest)


def _hash(text: str) -> str:
    return hashlib.sha256(normal_key(text).encode()).hexdigest()


def vectors(store: Store, embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`, from the store's cache where it has them."""
    hashes = [_hash(t) for t in texts]
    cached: dict[str, np.ndarray] = {}
    with closing(store.connection()) as db:
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            rows = db.execute(f"SELECT text_hash, vector FROM gap_vector WHERE encoder = ? AND text_hash IN "
                              f"({','.join('?' * len(chunk))})", (embedder.version, *chunk)).fetchall()
            cached.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
    missing = [i for i, h in enumerate(hashes) if h not in cached]
    if missing:
        new = np.asarray(embedder.topic_vectors([texts[i] for i in missing]), dtype=np.float32)
        with store.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO gap_vector VALUES (?,?,?)",
                           [(hashes[i], embedder.version, new[j].tobytes()) for j, i in enumerate(missing)])
        for j, i in enumerate(missing):
            cached[hashes[i]] = new[j]
    return np.stack([cached[h] for h in hashes]) if hashes else np.zeros((0, 1), np.float32)


def warm(store: Store, embedder: Embedder, t0: float, t1: float, max_texts: int = MAX_TEXTS) -> int:
    """Embed (and cache) the gap questions the page would show for [t0, t1); how many were new.
    The web server runs this in the background, so the page clusters cached vectors only."""
    texts = [q.text for q in gap_questions(ensure(store), t0, t1)[:max_texts]]
    with closing(store.connection()) as db:
        known = {h for (h,) in db.execute("SELECT text_hash FROM gap_vector WHERE encoder = ?", (embedder.version,))}
    new = [t for t in texts if _hash(t) not in known]
    if new:
        vectors(store, embedder, new)
    return len(new)


def preload() -> None:
    """Import the clustering code ahead of the first request (about 1.5 s)."""
    import sklearn.cluster  # noqa: F401


def cluster(vecs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """A topic label per row (average linkage, cosine distance cut at `threshold`)."""
    if len(vecs) < 2:
        return np.zeros(len(vecs), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                    linkage="average")
    return model.fit_predict(vecs)


def topics(store: Store, embedder: Embedder | None, t0: float, t1: float, threshold: float = THRESHOLD,
           sort: str = "newest", max_texts: int = MAX_TEXTS, examples: int | None = EXAMPLES) -> dict[str, Any]:
    """Gap topics in [t0, t1): {questions, distinct, clustered, topics: [{label, count, examples …}]}
    with `examples` questions per topic (None: all). Without an embedder (no index loaded) equal
    questions are still grouped, nothing more."""
    started = time.perf_counter()
    questions = gap_questions(store, t0, t1)
    kept = questions[:max_texts]
    if embedder is not None and kept:
        vecs = vectors(store, embedder, [q.text for q in kept])
        labels = cluster(vecs, threshold)
    else:
        vecs, labels = None, np.arange(len(kept))
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    out = [_topic(kept, members, vecs, examples) for members in groups.values()]
    out.sort(key=(lambda t: (-t["count"], -t["_latest"])) if sort == "count" else (lambda t: -t["_latest"]))
    for t in out:
        del t["_latest"]
    return {"questions": sum(q.count for q in questions), "distinct": len(questions), "shown": len(kept),
            "clustered": vecs is not None, "threshold": threshold, "topics": out, "older": questions[max_texts:],
            "seconds": round(time.perf_counter() - started, 3)}


def _topic(questions: list[Question], members: list[int], vecs: np.ndarray | None,
           examples: int | None) -> dict[str, Any]:
    if vecs is not None and len(members) > 2:
        sub = vecs[members]
        medoid = members[int(np.argmax((sub @ sub.T).sum(axis=1)))]
    else:
        medoid = max(members, key=lambda i: questions[i].count)
    reasons: dict[str, int] = {}
    for i in members:
        for r, n in questions[i].reasons.items():
            reasons[REASONS[r]] = reasons.get(REASONS[r], 0) + n
    newest = members  # questions come newest first, so each topic's members do too
    latest = questions[newest[0]].latest
    return {"id": _hash(questions[medoid].text)[:12], "label": questions[medoid].text,
            "count": sum(questions[i].count for i in members), "distinct": len(members), "reasons": reasons,
            "latest_at": china_time(latest), "_latest": latest,
            "examples": [{"text": questions[i].text, "count": questions[i].count,
                          "at": china_time(questions[i].latest),
                          "reasons": [REASONS[r] for r in questions[i].reasons]} for i in newest[:examples]]}


def rows(result: dict[str, Any]) -> list[list[Any]]:
    """CSV rows of a topics(..., examples=None) result: one per distinct question, with its topic;
    the older questions beyond the clustered ones follow under 未归并."""
    out: list[list[Any]] = [["话题", "话题提问次数", "问题", "次数", "最近提问", "原因"]]
    for t in result["topics"]:
        out += [[t["label"], t["count"], e["text"], e["count"], e["at"], "、".join(e["reasons"])]
                for e in t["examples"]]
    out += [["（较早的问题，未归并）", "", q.text, q.count, china_time(q.latest), "、".join(REASONS[r] for r in q.reasons)]
            for q in result["older"]]
    return out
