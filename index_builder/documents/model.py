"""What a reader hands to the structure splitter: a document's blocks and its metadata."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DocumentRefused(ValueError):
    """A file that cannot be read as a document (a scan without a text layer, a broken or
    encrypted file, an unknown format). The reason is shown to the person who added it."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Block:
    """One paragraph, heading or table row, in reading order."""
    text: str
    heading: int | None = None  # heading level from styles or markup (1 = top); None: body text
    page: int | None = None  # 1-based, for PDF
    row: int | None = None  # 1-based spreadsheet row, header excluded
    sheet: str | None = None
    cells: tuple[tuple[str, str], ...] = ()  # (column, value) of a table row


@dataclass
class DocumentMeta:
    title: str = ""
    doc_number: str | None = None  # 文号
    issuer: str | None = None  # 发布单位
    date: str | None = None  # YYYY-MM-DD or YYYY-MM as published
    url: str | None = None
    status: str | None = None  # 有效 | 失效 | 已废止 (as the source states it)
    valid_until: str | None = None  # YYYY-MM-DD
    replaces: str | None = None  # what this document replaces (title and 文号)
    superseded_by: str | None = None  # doc_id of a newer version of the same regulation
    superseded_by_title: str | None = None  # 《…》（文号） of that version, for the reply

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass
class Document:
    doc_id: str
    path: str
    format: str  # pdf | docx | html | xlsx | csv | md | txt
    meta: DocumentMeta
    blocks: list[Block] = field(default_factory=list)
    layout: str = "text"  # text | faq (question/answer rows) | table (rows of a list)
    notes: list[str] = field(default_factory=list)  # what was read, for `validate`
