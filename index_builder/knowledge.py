"""Load and validate the knowledge base: guides (YAML), policy documents, FAQ tables.

Every loader raises `KnowledgeError` naming the file and the field at fault, so a bad
file stops a build before anything is written.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .documents import (ANSWER_COLUMNS, QUESTION_COLUMNS, Document, DocumentRefused, is_document, link_versions,
                        load_document)

CHANNELS = ("窗口办理", "网上办理", "全程网办", "零跑动", "全市通办", "长三角跨省通办")
AUDIENCES = ("个人", "法人")
MATERIAL_FORMS = ("原件", "复印件", "原件和复印件", "电子")
EXEMPT_REASONS = ("本市政府部门核发", "电子证照")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
FAQ_SUFFIXES = (".tsv", ".csv", ".jsonl")


class KnowledgeError(ValueError):
    """A knowledge-base file is invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, field_name: str, problem: str):
        self.path, self.field, self.problem = str(path), field_name, problem
        super().__init__(f"{path}: field '{field_name}': {problem}")


@dataclass(frozen=True)
class Material:
    name: str
    form: str
    copies: int = 1
    exempt: bool = False
    exempt_reason: str | None = None
    e_license: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Guide:
    id: str
    title: str
    department: str
    audience: tuple[str, ...]
    category: str
    keywords: tuple[str, ...]
    scope: str
    conditions: tuple[str, ...]
    materials: tuple[Material, ...]
    process: tuple[str, ...]
    channels: tuple[str, ...]
    locations: tuple[str, ...]
    time_limit: dict[str, str]
    fee: str
    basis: tuple[str, ...]
    consult_phone: str
    complaint_phone: str
    source: str
    sample: bool
    last_reviewed: str
    path: str
    code: str | None = None
    online_entrance: str | None = None
    faq: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PolicySection:
    """One citable part of a policy document (a numbered task or the goals section)."""

    doc_id: str
    title: str
    text: str
    document: str
    lead: str | None = None  # 牵头单位
    task_no: int | None = None


@dataclass(frozen=True)
class FaqRow:
    doc_id: str
    question: str
    answer: str
    source: str


@dataclass
class KnowledgeBase:
    guides: list[Guide] = field(default_factory=list)
    policies: list[PolicySection] = field(default_factory=list)
    faqs: list[FaqRow] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)  # PDF, Word, HTML, spreadsheets, Markdown
    refused: list[DocumentRefused] = field(default_factory=list)  # files that could not be read, with why


# ---------------------------------------------------------------- field checks


class _Fields:
    """Typed accessors over one YAML mapping that raise KnowledgeError on misuse."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = ""):
        self.path, self.data, self.prefix = path, data, prefix

    def _err(self, name: str, problem: str) -> KnowledgeError:
        return KnowledgeError(self.path, self.prefix + name, problem)

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self._err(name, "is required and must be non-empty text")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # phone numbers written without quotes
        if not isinstance(value, str):
            raise self._err(name, f"must be text, got {type(value).__name__}")
        return value.strip()

    def texts(self, name: str, minimum: int = 1, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self._err(name, "must be a list")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self._err(f"{name}[{i}]", "must be non-empty text")
            if allowed and item not in allowed:
                raise self._err(f"{name}[{i}]", f"'{item}' is not one of {', '.join(allowed)}")
            out.append(item.strip())
        if len(out) < minimum:
            raise self._err(name, f"needs at least {minimum} item(s)")
        return tuple(out)

    def boolean(self, name: str, default: bool | None = None) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self._err(name, "must be true or false")
        return value


def parse_material(path: Path | str, prefix: str, raw: Any) -> Material:
    """One 申请材料 entry; `prefix` ("materials[0].") places errors in the file. Shared with
    the checklists of 一件事 bundles."""
    if not isinstance(raw, dict):
        raise KnowledgeError(path, prefix.rstrip("."), "must be a mapping with name and form")
    f = _Fields(Path(path), raw, prefix)
    form = f.text("form")
    if form not in MATERIAL_FORMS:
        raise f._err("form", f"'{form}' is not one of {', '.join(MATERIAL_FORMS)}")
    copies = raw.get("copies", 1)
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        raise f._err("copies", "must be a whole number ≥ 1")
    exempt = f.boolean("exempt", default=False)
    reason = f.text("exempt_reason", required=exempt)
    if reason is not None and reason not in EXEMPT_REASONS:
        raise f._err("exempt_reason", f"'{reason}' is not one of {', '.join(EXEMPT_REASONS)}")
    return Material(
        name=f.text("name"),
        form=form,
        copies=copies,
        exempt=exempt,
        exempt_reason=reason,
        e_license=f.text("e_license", required=False),
        note=f.text("note", required=False),
    )


def _faq(path: Path, raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise KnowledgeError(path, "faq", "must be a list of {q, a}")
    out = []
    for i, item in enumerate(raw):
        f = _Fields(path, item if isinstance(item, dict) else {}, f"faq[{i}].")
        out.append((f.text("q"), f.text("a")))
    return tuple(out)


def parse_guide(path: Path, data: Any) -> Guide:
    if not isinstance(data, dict):
        raise KnowledgeError(path, "(file)", "must be a YAML mapping of guide fields")
    f = _Fields(path, data)
    guide_id = f.text("id")
    if not ID_PATTERN.match(guide_id):
        raise f._err("id", f"'{guide_id}' must be lower-case letters, digits and '-'")
    if guide_id != path.stem:
        raise f._err("id", f"'{guide_id}' must equal the file name '{path.stem}'")
    materials_raw = data.get("materials")
    if not isinstance(materials_raw, list) or not materials_raw:
        raise f._err("materials", "needs at least 1 material")
    time_limit = data.get("time_limit")
    if not isinstance(time_limit, dict) or not any(time_limit.get(k) for k in ("legal", "promised")):
        raise f._err("time_limit", "must be a mapping with 'legal' and/or 'promised'")
    reviewed = data.get("last_reviewed")
    if isinstance(reviewed, str):
        try:
            reviewed = dt.date.fromisoformat(reviewed)
        except ValueError:
            reviewed = None
    if not isinstance(reviewed, dt.date):
        raise f._err("last_reviewed", "must be a date YYYY-MM-DD")
    return Guide(
        id=guide_id,
        title=f.text("title"),
        code=f.text("code", required=False),
        department=f.text("department"),
        audience=f.texts("audience", allowed=AUDIENCES),
        category=f.text("category"),
        keywords=f.texts("keywords", minimum=2),
        scope=f.text("scope"),
        conditions=f.texts("conditions"),
        materials=tuple(parse_material(path, f"materials[{i}].", m) for i, m in enumerate(materials_raw)),
        process=f.texts("process"),
        channels=f.texts("channels", allowed=CHANNELS),
        online_entrance=f.text("online_entrance", required=False),
        locations=f.texts("locations"),
        time_limit={k: str(v).strip() for k, v in time_limit.items() if k in ("legal", "promised") and v},
        fee=f.text("fee"),
        basis=f.texts("basis"),
        consult_phone=f.text("consult_phone"),
        complaint_phone=f.text("complaint_phone"),
        faq=_faq(path, data.get("faq")),
        source=f.text("source"),
        sample=f.boolean("sample"),
        last_reviewed=reviewed.isoformat(),
        path=str(path),
    )


def load_guide(path: Path) -> Guide:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, "(file)", f"is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise KnowledgeError(path, "(file)", "is not UTF-8 text") from exc
    return parse_guide(path, data)


# ---------------------------------------------------------------- policy documents

# "N." followed by text (not a digit: "附件:1.2020年…" is no task); numbers must run 1, 2, 3…
_TASK_START = re.compile(r"(?<!\d)(\d{1,2})\.(?=[^\d\s])")
_LEAD = re.compile(r"[(（]牵头单位[:：]([^;；)）]+)")
_HEADING = re.compile(r"^[一二三四五六七八九十]+、|^[(（][一二三四五六七八九十]+[)）]")


def parse_plan(path: Path) -> list[PolicySection]:
    """Split the 2020 Qingpu plan into its goals section and its numbered tasks, word for word."""
    text = path.read_text(encoding="utf-8")
    document = _document_title(text, path)
    goals = re.search(r"一、主要目标\s*\n(.+?)\n\s*二、", text, re.S)
    if not goals:
        raise KnowledgeError(path, "主要目标", "section '一、主要目标' not found")
    sections = [PolicySection("plan2020-goals", "主要目标", goals.group(1).strip(), document)]
    body = text[goals.end():]
    starts = [m for m in _TASK_START.finditer(body)]
    expected = 1
    for i, m in enumerate(starts):
        number = int(m.group(1))
        if number != expected:  # digits inside a sentence ("100项") are not task numbers
            continue
        end = next((s.start() for s in starts[i + 1:] if int(s.group(1)) == expected + 1), None)
        chunk = body[m.end(): end].strip()
        chunk = "\n".join(line for line in chunk.splitlines() if not _HEADING.match(line.strip())).strip()
        chunk = re.split(r"\n附件[:：]", chunk)[0].strip()
        title = re.split(r"[。]", chunk, maxsplit=1)[0]
        lead = _LEAD.search(chunk)
        sections.append(
            PolicySection(f"plan2020-task-{number}", title, chunk, document,
                          lead.group(1).strip() if lead else None, number)
        )
        expected += 1
    if expected == 1:
        raise KnowledgeError(path, "tasks", "no numbered tasks found")
    return sections


def _document_title(text: str, path: Path) -> str:
    m = re.search(r"《([^》]+)》", text)
    return m.group(1) if m else path.stem


# ---------------------------------------------------------------- FAQ tables


def load_faq_table(path: Path) -> list[FaqRow]:
    """A TSV, CSV or JSONL table with columns id, question (may be empty), answer."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise KnowledgeError(path, f"line {n}", f"is not JSON: {exc.msg}") from exc
        elif suffix in (".tsv", ".csv"):
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",",
                                           quoting=csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL))
        else:
            raise KnowledgeError(path, "(file)", f"FAQ tables must end in {', '.join(FAQ_SUFFIXES)}")
    except UnicodeDecodeError as exc:
        raise KnowledgeError(path, "(file)", "is not UTF-8 text") from exc
    out, seen = [], set()
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise KnowledgeError(path, f"row {n}", "must be an object with id, question, answer")
        for column in ("id", "answer"):
            if not str(row.get(column) or "").strip():
                raise KnowledgeError(path, f"row {n}.{column}", "is required")
        doc_id = str(row["id"]).strip()
        if doc_id in seen:
            raise KnowledgeError(path, f"row {n}.id", f"duplicate id '{doc_id}'")
        seen.add(doc_id)
        out.append(FaqRow(doc_id, str(row.get("question") or "").strip(), str(row["answer"]).strip(), str(path)))
    if not out:
        raise KnowledgeError(path, "(file)", "has no rows")
    return out


# ---------------------------------------------------------------- whole knowledge base


KB_FOLDERS = ("guides", "policies", "faq", "documents")


def load_source(source: Path | str) -> KnowledgeBase:
    """Load a knowledge-base folder (guides/, policies/, faq/, documents/), a folder of
    documents (PDF, Word, HTML, spreadsheets, Markdown, text, in any subfolders), a FAQ table
    or one document. An unreadable document is refused with its reason (kb.refused) rather
    than stopping the build; an invalid guide or FAQ table stops it."""
    source = Path(source)
    if not source.exists():
        raise KnowledgeError(source, "(source)", "does not exist")
    kb = KnowledgeBase()
    if source.is_file():
        if source.suffix.lower() in (".tsv", ".jsonl") or (source.suffix.lower() == ".csv" and _is_faq_csv(source)):
            kb.faqs = load_faq_table(source)
        else:
            _add_documents(kb, [source])
            if not kb.documents:
                raise KnowledgeError(source, "(file)", kb.refused[0].reason if kb.refused else "is not a document")
        return kb
    if any((source / name).is_dir() for name in KB_FOLDERS):
        for path in sorted((source / "guides").glob("*.yml")) + sorted((source / "guides").glob("*.yaml")):
            kb.guides.append(load_guide(path))
        for path in sorted((source / "policies").glob("*.txt")):
            kb.policies.extend(parse_plan(path))
        faq_dir = source / "faq"
        for path in sorted(p for p in faq_dir.glob("*") if p.suffix.lower() in FAQ_SUFFIXES):
            kb.faqs.extend(load_faq_table(path))
        documents_dir = source / "documents"
    else:
        documents_dir = source
    if documents_dir.is_dir():
        _add_documents(kb, sorted(p for p in documents_dir.rglob("*") if p.is_file() and is_document(p)))
    _check_unique_ids(kb)
    link_versions(kb.documents)
    if not (kb.guides or kb.policies or kb.faqs or kb.documents or kb.refused):
        raise KnowledgeError(source, "(source)", "holds no guides/*.yml, policies/*.txt, faq/* tables or documents")
    return kb


def _is_faq_csv(path: Path) -> bool:
    """A CSV with id and answer columns is a FAQ table of ours; any other CSV is a document."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError):
        return False
    return "id" in header and "answer" in header


def _add_documents(kb: KnowledgeBase, paths: list[Path]) -> None:
    for path in paths:
        try:
            doc = load_document(path)
        except DocumentRefused as refused:
            kb.refused.append(refused)
            continue
        if doc.layout == "faq":
            kb.faqs.extend(_faq_rows(doc))
        else:
            kb.documents.append(doc)


def _faq_rows(doc: Document) -> list[FaqRow]:
    """A question/answer spreadsheet: one FAQ row per line, id '<file>-<row>'."""
    out = []
    for block in doc.blocks:
        if not block.row:
            continue
        lowered = {k.strip().lower(): v for k, v in block.cells}
        question = next((lowered[c] for c in QUESTION_COLUMNS if c in lowered), "")
        answer = next((lowered[c] for c in ANSWER_COLUMNS if c in lowered), "")
        if answer:
            out.append(FaqRow(f"{doc.doc_id}-{block.row}", question, answer, doc.path))
    return out


def load_sources(sources: list[Path | str]) -> KnowledgeBase:
    """Several sources as one knowledge base (the bundled one plus a district's folders or
    FAQ tables); a document id may be used only once across all of them."""
    kb = KnowledgeBase()
    for source in sources:
        part = load_source(source)
        kb.guides.extend(part.guides)
        kb.policies.extend(part.policies)
        kb.faqs.extend(part.faqs)
        kb.documents.extend(part.documents)
        kb.refused.extend(part.refused)
    _check_unique_ids(kb)
    link_versions(kb.documents)  # a newer version may come from another folder
    return kb


def _check_unique_ids(kb: KnowledgeBase) -> None:
    seen: dict[str, str] = {}
    items = [(g.id, g.path) for g in kb.guides] + [(p.doc_id, p.document) for p in kb.policies] \
        + [(f.doc_id, f.source) for f in kb.faqs] + [(d.doc_id, d.path) for d in kb.documents]
    for doc_id, where in items:
        if doc_id in seen:
            raise KnowledgeError(where, "id", f"'{doc_id}' is also used by {seen[doc_id]}")
        seen[doc_id] = where
