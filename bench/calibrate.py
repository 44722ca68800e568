"""Fit the retriever's confidence (answer vs. hand off) on dev data.

Positives: in-domain questions whose top-1 document is right. Negatives: in-domain
questions answered wrongly at rank 1, and out-of-scope questions. Prints the fitted
weights for retriever.CONF_WEIGHTS and the accuracy of the 0.5 threshold.

    python -m bench.calibrate --index build/indexes/kb
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from index_builder.evaluate import load_queries
from index_builder.retriever import CONFIDENT, Retriever

ROOT = Path(__file__).resolve().parent.parent


def collect(r: Retriever, questions, out_of_scope: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, conf = [], [], []
    for text, expected in [(q.query, q.expected) for q in questions] + [(t, frozenset()) for t in out_of_scope]:
        res = r.search(text, k=5)
        if not res.hits:
            continue
        X.append(r.features(r.tokenizer.tokens(res.query), res.hits))
        y.append(res.hits[0].passage.doc_id in expected)
        conf.append(res.confidence)
    return np.asarray(X), np.asarray(y), np.asarray(conf)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, default=ROOT / "build" / "indexes" / "kb")
    ap.add_argument("--queries", type=Path, default=ROOT / "knowledge_base" / "eval" / "questions.tsv")
    ap.add_argument("--out-of-scope", type=Path, default=ROOT / "knowledge_base" / "eval" / "out_of_scope.txt")
    args = ap.parse_args()
    r = Retriever(args.index)
    oos = [l.strip() for l in args.out_of_scope.read_text(encoding="utf-8").splitlines() if l.strip()]
    X, y, conf = collect(r, load_queries(args.queries), oos)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0).fit(X, y)
    w = [round(float(v), 2) for v in model.coef_[0]] + [round(float(model.intercept_[0]), 2)]
    pred = conf >= CONFIDENT
    n_oos = len(oos)
    print(json.dumps({
        "fitted_weights(dense_top, coverage, bias)": w,
        "current": {"accuracy": round(float((pred == y).mean()), 3),
                    "answered_when_right": round(float(pred[y].mean()), 3),
                    "handed_off_when_wrong": round(float((~pred[~y]).mean()), 3),
                    "out_of_scope_handed_off": round(float((~pred[-n_oos:]).mean()), 3)},
        "n": int(len(y)), "positives": int(y.sum())}, ensure_ascii=False))


if __name__ == "__main__":
    main()
