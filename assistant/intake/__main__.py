"""Command line: train and evaluate the 诉求 category classifier.

    python -m assistant.intake train [--tickets FILE] [--out build/models/intake]
    python -m assistant.intake eval --test FILE [--model build/models/intake]

FILE is a TSV with the header `text<TAB>category`; without --tickets the model is trained on
knowledge_base/intake/examples.tsv. `eval` prints one JSON line: n, accuracy, macro_f1 (over
the categories of the test file) and per_category {category: {precision, recall, n}}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from index_builder.knowledge import KnowledgeError

from .data import EXAMPLES_FILE, read_tickets

DEFAULT_MODEL = Path("build/models/intake")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m assistant.intake", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and save it in a folder")
    t.add_argument("--tickets", type=Path, default=None, help="TSV text<TAB>category (default: examples.tsv)")
    t.add_argument("--add-examples", action="store_true",
                   help="also train on examples.tsv (covers categories the tickets lack)")
    t.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    e = sub.add_parser("eval", help="accuracy and macro-F1 on a labelled TSV")
    e.add_argument("--test", type=Path, required=True)
    e.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    return ap


def evaluate(model, rows: list[tuple[str, str]]) -> dict:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    truth = [c for _, c in rows]
    pred = [model.predict(t, k=1)[0][0] for t, _ in rows]
    labels = sorted(set(truth))
    p, r, _, n = precision_recall_fscore_support(truth, pred, labels=labels, zero_division=0)
    return {
        "n": len(rows),
        "accuracy": round(sum(a == b for a, b in zip(truth, pred)) / len(rows), 4),
        "macro_f1": round(float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0)), 4),
        "per_category": {c: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "n": int(n[i])}
                         for i, c in enumerate(labels)},
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .classifier import IntakeModel, IntakeModelError

    try:
        if args.command == "train":
            sources = [args.tickets or EXAMPLES_FILE]
            if args.add_examples and args.tickets:
                sources.append(EXAMPLES_FILE)
            rows = [row for path in sources for row in read_tickets(path)]
            start = time.perf_counter()
            model = IntakeModel.train(rows, source=sources)
            model.save(args.out)
            counts = "，".join(f"{c} {k}" for c, k in model.manifest["counts"].items())
            print(f"已训练：{len(rows)} 条，{len(model.categories)} 个类别（{counts}），"
                  f"用时 {time.perf_counter() - start:.1f} 秒 → {args.out}")
        else:
            rows = read_tickets(args.test)
            print(json.dumps(evaluate(IntakeModel.load(args.model), rows), ensure_ascii=False))
    except (KnowledgeError, IntakeModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
