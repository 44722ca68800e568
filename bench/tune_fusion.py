"""Tune the dense/BM25 fusion on dev data and fit the answer-or-hand-off confidence.

Scores every query once against every passage (dense and BM25), then compares fusion
variants in numpy. Prints one JSON line per (set, variant) and the chosen setting.

    python -m bench.tune_fusion --index build/indexes/kb --queries knowledge_base/eval/questions.tsv \
        --index2 build/indexes/ncp --queries2 build/ncp/ncp_queries.tsv
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from index_builder.evaluate import first_hit_rank, load_queries, metrics
from index_builder.normalize import normalize_query
from index_builder.retriever import Retriever


def score_matrix(r: Retriever, queries) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    vecs = r.faiss.reconstruct_n(0, r.faiss.ntotal)
    texts = [normalize_query(q.query)[0] for q in queries]
    qv = r.encoder.encode_queries(texts)
    dense = qv @ vecs.T
    tokens = [r.tokenizer.tokens(t) for t in texts]
    bm25 = np.vstack([r.bm25.scores(t) for t in tokens])
    return dense, bm25, tokens


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (x - lo) / np.maximum(hi - lo, 1e-9)


def top_candidates(x: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros_like(x, dtype=bool)
    idx = np.argsort(-x, axis=1)[:, :n]
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def variants(dense: np.ndarray, bm25: np.ndarray, n_cand: int = 100) -> dict[str, np.ndarray]:
    out = {"dense": dense, "bm25": bm25}
    cand = top_candidates(dense, n_cand) | (top_candidates(bm25, n_cand) & (bm25 > 0))
    bn = bm25 / np.maximum(bm25.max(axis=1, keepdims=True), 1e-9)
    # min-max of dense over the candidate set, as the retriever does
    d_c = np.where(cand, dense, np.inf)
    lo = d_c.min(axis=1, keepdims=True)
    hi = np.where(cand, dense, -np.inf).max(axis=1, keepdims=True)
    dn = (dense - lo) / np.maximum(hi - lo, 1e-9)
    for a in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        out[f"minmax a={a}"] = np.where(cand, a * dn + (1 - a) * bn, -1e9)
    rd = np.argsort(np.argsort(-dense, axis=1), axis=1) + 1
    rb = np.argsort(np.argsort(-bm25, axis=1), axis=1) + 1
    for k in (10, 60):
        for w in (0.5, 0.6, 0.7):
            out[f"rrf k={k} w={w}"] = w / (k + rd) + (1 - w) / (k + rb) * (bm25 > 0)
    return out


def evaluate_variant(scores: np.ndarray, r: Retriever, queries) -> dict:
    doc_ids = [p.doc_id for p in r.passages]
    ranks = []
    for row, q in zip(scores, queries):
        order = np.argsort(-row)[:200]
        ranks.append(first_hit_rank([doc_ids[i] for i in order], q.expected))
    return metrics(ranks, [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, action="append", required=True)
    ap.add_argument("--queries", type=Path, action="append", required=True)
    args = ap.parse_args()
    table: dict[str, list[float]] = {}
    for index, qfile in zip(args.index, args.queries):
        r, queries = Retriever(index), load_queries(qfile)
        dense, bm25, _ = score_matrix(r, queries)
        for name, scores in variants(dense, bm25).items():
            m = evaluate_variant(scores, r, queries)
            table.setdefault(name, []).append(m["recall@5"])
            print(json.dumps({"set": qfile.name, "variant": name, **{k: m[k] for k in ("recall@1", "recall@5", "mrr@10")}}))
    best = max((k for k in table if k not in ("dense", "bm25")), key=lambda k: sum(table[k]))
    print(json.dumps({"best_by_mean_recall@5": best, "recall@5": table[best],
                      "dense": table["dense"], "bm25": table["bm25"]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
