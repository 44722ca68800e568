"""Real documents as the knowledge base's third kind of source, beside guides and FAQ tables:
PDF, Word, HTML, spreadsheets, Markdown and text, read into blocks, described by their
metadata, and split into citable sections (structure.py).

    doc = load_document(Path("14-shigong-xuke-guanli-guiding.md"))
    doc.meta.doc_number  # 沪住建规范〔2023〕2号
"""
from __future__ import annotations

from pathlib import Path

from . import metadata
from .model import Block, Document, DocumentMeta, DocumentRefused
from .readers import HEADER_SEP, READERS, REFUSED_SUFFIXES

__all__ = ["Block", "Document", "DocumentMeta", "DocumentRefused", "load_document", "is_document",
           "link_versions", "SUFFIXES"]
SUFFIXES = tuple(READERS) + tuple(REFUSED_SUFFIXES)
# Question and answer columns that make a spreadsheet a FAQ table rather than a list.
QUESTION_COLUMNS = ("问题", "问", "question", "咨询问题", "常见问题")
ANSWER_COLUMNS = ("答案", "答", "回答", "answer", "解答", "答复")


def is_document(path: Path) -> bool:
    name = path.name.lower()
    return path.suffix.lower() in SUFFIXES and not name.startswith((".", "~$")) \
        and not any(name.endswith(s) for s in (".meta.yml", ".meta.yaml", ".meta.json"))


def load_document(path: Path | str) -> Document:
    """Read one file; raises DocumentRefused with a reason a person can act on."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in REFUSED_SUFFIXES:
        raise DocumentRefused(path, REFUSED_SUFFIXES[suffix])
    if suffix not in READERS:
        raise DocumentRefused(path, f"不支持的文件格式（{suffix or '无扩展名'}）")
    blocks, props = READERS[suffix](path)  # props: front matter, file properties, HTML meta tags
    if not blocks:
        raise DocumentRefused(path, "文件中没有文字")
    try:
        sidecar = metadata.read_sidecar(path)
    except (ValueError, OSError) as exc:
        raise DocumentRefused(path, f"元数据文件无法读取：{exc}") from exc
    layout = "text"
    if suffix in (".xlsx", ".csv"):
        layout = _table_layout(blocks)
        portal: dict[str, str] = {}
    else:
        blocks, portal = _without_portal_table(blocks)
    text = "\n".join(b.text for b in blocks)
    meta = metadata.build_meta(sidecar, props, portal, metadata.from_text(text) if layout == "text" else {},
                               fallback_title=_first_title(blocks, path) if layout == "text" else path.stem)
    doc = Document(path.stem, str(path), suffix.lstrip("."), meta, blocks, layout)
    pages = {b.page for b in blocks if b.page}
    doc.notes.append(f"{len(blocks)} 段" + (f"，{len(pages)} 页" if pages else "") +
                     (f"，{'问答表' if layout == 'faq' else '表格'}" if layout != "text" else ""))
    return doc


def _table_layout(blocks: list[Block]) -> str:
    """'faq' when the header row has a question and an answer column, else 'table'."""
    header = next((b.text.split(HEADER_SEP) for b in blocks if b.heading == 0), [])
    lowered = [h.strip().lower() for h in header]
    is_faq = any(h in QUESTION_COLUMNS for h in lowered) and any(h in ANSWER_COLUMNS for h in lowered)
    return "faq" if is_faq else "table"


def _without_portal_table(blocks: list[Block]) -> tuple[list[Block], dict[str, str]]:
    drop, found = metadata.portal_fields([b.text for b in blocks])
    return [b for i, b in enumerate(blocks) if i not in drop], found


def _first_title(blocks: list[Block], path: Path) -> str:
    heading = next((b.text for b in blocks if b.heading), None)
    if heading:
        return heading
    first = blocks[0].text
    return first if len(first) <= 80 else path.stem


def link_versions(docs: list[Document]) -> None:
    """A newer document of the same regulation (same cited title, without version words)
    supersedes the older ones: they point at it, and it names what it replaced."""
    groups: dict[str, list[Document]] = {}
    for doc in docs:
        if doc.layout == "text":
            groups.setdefault(metadata.same_work(doc.meta.title), []).append(doc)
    for versions in groups.values():
        if len(versions) < 2:
            continue
        versions.sort(key=lambda d: d.meta.date or "")
        newest = versions[-1]
        for old in versions[:-1]:
            old.meta.superseded_by = newest.doc_id
            old.meta.superseded_by_title = f"《{metadata.cited_title(newest.meta.title)}》" + (
                f"（{newest.meta.doc_number}）" if newest.meta.doc_number else "")
        if not newest.meta.replaces:
            newest.meta.replaces = "；".join(
                f"《{metadata.cited_title(o.meta.title)}》" + (f"（{o.meta.doc_number}）" if o.meta.doc_number else "")
                for o in versions[:-1])
