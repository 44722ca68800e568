"""Turn ../shared/eval/ncp_dev.tsv into a FAQ table (answers only, question left empty)
and a query file (questions, expected = the row's own id)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NCP = ROOT.parent / "shared" / "eval" / "ncp_dev.tsv"


def prepare(out_dir: Path, source: Path = NCP) -> tuple[Path, Path]:
    if not source.exists():
        raise FileNotFoundError(f"{source} not found (it comes with ../shared)")
    out_dir.mkdir(parents=True, exist_ok=True)
    faq, queries = out_dir / "ncp_faq.tsv", out_dir / "ncp_queries.tsv"
    with source.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    clean = lambda s: " ".join((s or "").split())  # noqa: E731 - tabs/newlines would break the TSV
    with faq.open("w", encoding="utf-8") as f, queries.open("w", encoding="utf-8") as q:
        f.write("id\tquestion\tanswer\n")
        q.write("query\texpected\n")
        for r in rows:
            f.write(f"{r['id']}\t\t{clean(r['answer'])}\n")
            q.write(f"{clean(r['question'])}\t{r['id']}\n")
    return faq, queries


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "ncp"
    print(*prepare(out))
