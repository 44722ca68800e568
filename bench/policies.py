"""Retrieval over real policy documents: the 40 official Shanghai and Qingpu documents in
../shared/policies/shanghai, read in place, asked with bench/data/policy_questions.tsv
(questions written as citizens, construction-company clerks and 12345 agents ask them, each
with the document and the article or outline heading that answers it).

Prints, for the documents served beside the bundled guides and for the documents alone:
recall@1/5 by document and by passage (the hit's article or heading path matches the one
expected), MRR, the share of answers whose citation carries an article, heading number or
page, p50/p95 latency (query encoding included), and the index build time from scratch.

The ranking model is fitted on these questions too (bench/learn.py), so the figures of the
shipped model are in sample (its trees remember them: passage recall@5 1.0); the out-of-fold
ones that `make learn` recorded (documents + guides; folds grouped by document, so no question
on that document was fitted on) are printed after them, and they are the figures to quote.

    python -m bench.policies [--by-persona] [--misses N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from index_builder.builder import build_index
from index_builder.retriever import Retriever

from .corpora import POLICIES, ROOT, policy_index, policy_questions

K = 5


def locator_keys(locator: str) -> tuple[str, ...]:
    """'三 > （二）' -> ('三', '（二）'); '-' (an unnumbered part) -> ()."""
    return () if locator.strip() == "-" else tuple(x.strip() for x in locator.split(">") if x.strip())


def passage_matches(meta: dict, expected: tuple[str, ...]) -> bool:
    """The hit's numbered path and the expected one agree as far as both go: a whole article
    holds its items, and an item lies inside its article."""
    keys = tuple(meta.get("keys") or ())
    if not expected:
        return not keys
    if not keys:
        return False
    n = min(len(keys), len(expected))
    return keys[:n] == expected[:n]


def has_locator(hit) -> bool:
    m = hit.passage.meta
    return bool(m.get("keys") or m.get("pages") or m.get("rows"))


def run(retriever: Retriever, questions: list[dict[str, str]], misses: int = 0) -> dict:
    doc_r1 = doc_r5 = pas_r1 = pas_r5 = cited = answered = answered_right = 0
    rr, times, missed = [], [], []
    by_persona: dict[str, list[int]] = {}
    for q in questions:
        start = time.perf_counter()
        result = retriever.search(q["question"], k=20)
        times.append((time.perf_counter() - start) * 1000)
        docs = result.doc_ids()
        expected = locator_keys(q["locator"])
        hits = result.hits
        ok = [h.passage.doc_id == q["doc_id"] and passage_matches(h.passage.meta, expected) for h in hits]
        doc_r1 += bool(docs[:1] == [q["doc_id"]])
        doc_r5 += q["doc_id"] in docs[:K]
        pas_r1 += bool(ok[:1] and ok[0])
        pas_r5 += any(ok[:K])
        rank = next((i for i, o in enumerate(ok[:10], 1) if o), None)
        rr.append(1 / rank if rank else 0.0)
        cited += bool(hits) and has_locator(hits[0])
        if result.confident:  # what the assistant would answer rather than hand off
            answered += 1
            answered_right += bool(docs[:1] == [q["doc_id"]])
        by_persona.setdefault(q["persona"], []).append(int(any(ok[:K])))
        if misses and not any(ok[:K]) and len(missed) < misses:
            missed.append({"q": q["question"], "want": f"{q['doc_id']} {q['locator']}",
                           "got": [f"{h.passage.doc_id[:12]} {h.passage.section}" for h in hits[:3]]})
    n = len(questions)
    out = {"questions": n, "doc_recall@1": round(doc_r1 / n, 3), "doc_recall@5": round(doc_r5 / n, 3),
           "passage_recall@1": round(pas_r1 / n, 3), "passage_recall@5": round(pas_r5 / n, 3),
           "passage_mrr@10": round(float(np.mean(rr)), 3), "cited_with_locator": round(cited / n, 3),
           "answered_confidently": round(answered / n, 3),
           "right_doc_when_answered": round(answered_right / answered, 3) if answered else None,
           "p50_ms": round(float(np.percentile(times, 50)), 1), "p95_ms": round(float(np.percentile(times, 95)), 1),
           "passage_recall@5_by_persona": {p: round(float(np.mean(v)), 3) for p, v in sorted(by_persona.items())}}
    if missed:
        out["misses"] = missed
    return out


def build_seconds() -> tuple[float, int]:
    """A build of the 40 documents alone from nothing (reading, splitting, embedding, indexing)."""
    out = ROOT / "build" / "bench" / "indexes" / "policies-scratch"
    for path in (out, out.parent / f".{out.name}.builds"):
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    start = time.perf_counter()
    report = build_index(POLICIES, out, progress=False)
    return round(time.perf_counter() - start, 1), report.passages


def out_of_fold(retriever: Retriever) -> dict | None:
    """Document and passage (article) recall of these questions as `make learn` recorded them
    out of fold, or None when the model has no such record."""
    model = retriever.model
    oof = (model.meta.get("oof") or {}).get("policies") if model is not None else None
    if not oof:
        return None
    return {"document": oof.get("oof_hybrid+rerank"), "passage": oof.get("oof_passage")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", type=int, default=0, help="show up to N questions missed at passage recall@5")
    ap.add_argument("--no-build-time", action="store_true", help="skip the from-scratch build timing")
    args = ap.parse_args()
    questions = policy_questions()
    print(json.dumps({"cores": os.cpu_count(), "documents": str(POLICIES), "questions": len(questions)}, ensure_ascii=False))
    rows = []
    for name, with_guides in (("documents + bundled guides", True), ("documents alone", False)):
        retriever = Retriever(policy_index(with_guides=with_guides))
        row = {"index": name, "passages": len(retriever.passages), **run(retriever, questions, args.misses)}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False))
        if with_guides:
            print(json.dumps({"documents + bundled guides, out of fold (make learn)": out_of_fold(retriever)},
                             ensure_ascii=False))
    if not args.no_build_time:
        seconds, passages = build_seconds()
        print(json.dumps({"build_from_scratch_s": seconds, "passages": passages}))
    keys = ("doc_recall@1", "doc_recall@5", "passage_recall@1", "passage_recall@5", "cited_with_locator", "p95_ms")
    print("\n| index | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['index']} | " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
