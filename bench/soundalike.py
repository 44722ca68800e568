"""How often the sound-alike correction (index_builder/soundalike.py) changes text that was right.

Correct Chinese that this project did not write is run through the corrector: the NCP policy
answers and questions, and the citizen messages of ../shared/eval (Traditional -> Simplified
first, as transcripts are). Every changed character is a false change. The figure is printed
per 1,000 characters for each cost, with the most frequent changes. Its other side, the errors
fixed, is the CER of `python -m bench.voice` with and without `--set correct_soundalikes=false`.

    .venv/bin/python -m bench.soundalike                 # costs 3, 4, 5, 6, 8
    .venv/bin/python -m bench.soundalike --cost 5 --show 30
"""
from __future__ import annotations

import argparse
import csv
import difflib
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_EVAL = ROOT.parent / "shared" / "eval"


def correct_texts(limit: int) -> dict[str, list[str]]:
    """name -> sentences from ../shared/eval (empty when it is absent)."""
    from index_builder.normalize import to_simplified

    sets: dict[str, list[str]] = {}
    corpus = SHARED_EVAL / "ncp_corpus.tsv"
    if corpus.is_file():
        with open(corpus, encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        sets["ncp answers"] = [to_simplified(r["answer"]) for r in rows[:limit]]
    queries = SHARED_EVAL / "ncp_dev_queries.tsv"
    if queries.is_file():
        with open(queries, encoding="utf-8") as f:
            sets["ncp questions"] = [to_simplified(r["query"]) for r in csv.DictReader(f, delimiter="\t")][:limit]
    messages = SHARED_EVAL / "citizen_messages_dev.tsv"
    if messages.is_file():
        with open(messages, encoding="utf-8") as f:
            sets["citizen messages"] = [to_simplified(r["text"]) for r in csv.DictReader(f, delimiter="\t")][:limit]
    return sets


def false_changes(corrector, texts: list[str]) -> tuple[int, int, Counter]:
    """(changed characters, characters, Counter of 'before -> after' with two characters of context)."""
    changed = total = 0
    pairs: Counter = Counter()
    for text in texts:
        fixed = corrector.correct(text)
        total += len(text)
        for op, a, b, c, d in difflib.SequenceMatcher(None, text, fixed, autojunk=False).get_opcodes():
            if op != "equal":
                changed += max(b - a, d - c)
                pairs[f"{text[max(0, a - 2):b + 2]} -> {fixed[max(0, c - 2):d + 2]}"] += 1
    return changed, total, pairs


def main(argv: list[str] | None = None) -> int:
    from index_builder.soundalike import default_corrector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cost", type=float, action="append", help="cost per changed character (repeatable)")
    ap.add_argument("--limit", type=int, default=2000, help="sentences per set")
    ap.add_argument("--show", type=int, default=10, help="most frequent changes shown for each cost")
    args = ap.parse_args(argv)
    sets = correct_texts(args.limit)
    if not sets:
        print(f"error: no correct text found under {SHARED_EVAL}", file=sys.stderr)
        return 2
    print("false changes per 1,000 characters of correct text (lower is better)")
    print(f"{'cost':>5}  " + "  ".join(f"{name} ({sum(map(len, t)):,} chars)" for name, t in sets.items())
          + "  ms/sentence")
    for cost in args.cost or [3.0, 4.0, 5.0, 6.0, 8.0]:
        corrector = default_corrector(cost=cost)
        cells, pairs, n, t0 = [], Counter(), 0, time.perf_counter()
        for name, texts in sets.items():
            changed, total, found = false_changes(corrector, texts)
            pairs.update(found)
            n += len(texts)
            cells.append(f"{1000 * changed / total:.2f}".rjust(len(name) + len(f" ({total:,} chars)")))
        ms = (time.perf_counter() - t0) * 1000 / n
        print(f"{cost:>5}  " + "  ".join(cells) + f"  {ms:.2f}")
        for pair, count in pairs.most_common(args.show):
            print(f"        {count:>3}  {pair}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
