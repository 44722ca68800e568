"""The intake data files in `knowledge_base/intake/`, validated when loaded.

    categories.yml    first-level categories (name, description, topics)
    departments.yml   category → 承办单位 (a sample mapping, `sample: true`)
    examples.tsv      `text<TAB>category` rows the classifier can train on without real history

Every error is a `KnowledgeError` naming the file and the field (and the line of a table).
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from index_builder.knowledge import KnowledgeError

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "knowledge_base" / "intake"
CATEGORIES_FILE = DATA_DIR / "categories.yml"
DEPARTMENTS_FILE = DATA_DIR / "departments.yml"
EXAMPLES_FILE = DATA_DIR / "examples.tsv"
FALLBACK_CATEGORY = "其他"  # routed by hand at the hotline office

csv.field_size_limit(1 << 24)


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class Department:
    category: str
    primary: str
    others: tuple[str, ...] = ()
    local: bool = False  # the 街道/镇 where it happened co-handles

    def for_town(self, town: str | None) -> str:
        """The 承办单位 of a draft: the primary unit, with the 街镇 when it co-handles."""
        return f"{self.primary}（属地：{town}）" if self.local and town else self.primary


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise KnowledgeError(path, "(file)", "file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, "(file)", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise KnowledgeError(path, "(file)", "must be a mapping")
    return data


def _text(path: Path, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(path, field, "is required and must be non-empty text")
    return value.strip()


def _texts(path: Path, field: str, value: Any, minimum: int = 0) -> tuple[str, ...]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise KnowledgeError(path, field, "must be a list")
    items = tuple(_text(path, f"{field}[{i}]", v) for i, v in enumerate(value))
    if len(items) < minimum:
        raise KnowledgeError(path, field, f"needs at least {minimum} item(s)")
    return items


@lru_cache(maxsize=8)
def load_categories(path: Path = CATEGORIES_FILE) -> tuple[Category, ...]:
    path = Path(path)
    items = _read_yaml(path).get("categories")
    if not isinstance(items, list) or not items:
        raise KnowledgeError(path, "categories", "must be a non-empty list")
    out: list[Category] = []
    for i, item in enumerate(items):
        where = f"categories[{i}]"
        if not isinstance(item, dict):
            raise KnowledgeError(path, where, "must be a mapping (name, description, topics)")
        unknown = set(item) - {"name", "description", "topics"}
        if unknown:
            raise KnowledgeError(path, f"{where}.{sorted(unknown)[0]}", "is not a known field (name, description, topics)")
        name = _text(path, f"{where}.name", item.get("name"))
        if any(c.name == name for c in out):
            raise KnowledgeError(path, f"{where}.name", f"duplicate category '{name}'")
        out.append(Category(name, _text(path, f"{where}.description", item.get("description")),
                            _texts(path, f"{where}.topics", item.get("topics"), minimum=2)))
    if not any(c.name == FALLBACK_CATEGORY for c in out):
        raise KnowledgeError(path, "categories", f"must include the fallback category '{FALLBACK_CATEGORY}'")
    return tuple(out)


def category_names(path: Path = CATEGORIES_FILE) -> tuple[str, ...]:
    return tuple(c.name for c in load_categories(Path(path)))


@lru_cache(maxsize=8)
def load_departments(path: Path = DEPARTMENTS_FILE, categories_path: Path = CATEGORIES_FILE) -> dict[str, Department]:
    """Category → Department; every category of categories.yml must have one."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data.get("sample"), bool):
        raise KnowledgeError(path, "sample", "must be true or false (true: not the district's official mapping)")
    if data["sample"]:
        _text(path, "note", data.get("note"))  # a sample must say so to whoever reads it
    table = data.get("departments")
    if not isinstance(table, dict) or not table:
        raise KnowledgeError(path, "departments", "must be a non-empty mapping category → department")
    known = category_names(Path(categories_path))
    out: dict[str, Department] = {}
    for cat, entry in table.items():
        where = f"departments.{cat}"
        if cat not in known:
            raise KnowledgeError(path, where, f"unknown category (categories.yml has: {'、'.join(known)})")
        if not isinstance(entry, dict):
            raise KnowledgeError(path, where, "must be a mapping (primary, others, local)")
        local = entry.get("local", False)
        if not isinstance(local, bool):
            raise KnowledgeError(path, f"{where}.local", "must be true or false")
        out[cat] = Department(cat, _text(path, f"{where}.primary", entry.get("primary")),
                              _texts(path, f"{where}.others", entry.get("others")), local)
    missing = [c for c in known if c not in out]
    if missing:
        raise KnowledgeError(path, "departments", f"no department for {'、'.join(missing)}")
    return out


def read_tickets(path: Path | str, categories: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """Rows (text, category) of a TSV with the header `text<TAB>category` (other columns are
    ignored). An empty text or a category missing from categories.yml is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeError(path, "(file)", "file not found")
    known = categories if categories is not None else category_names()
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.strip() for h in next(reader, [])]
        if "text" not in header or "category" not in header:
            raise KnowledgeError(path, "(header)", f"line 1: needs the columns text<TAB>category, got {header!r}")
        ti, ci = header.index("text"), header.index("category")
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(ti, ci):
                raise KnowledgeError(path, "(row)", f"line {line}: expected {len(header)} tab-separated columns, got {len(row)}")
            text, cat = row[ti].strip(), row[ci].strip()
            if not text:
                raise KnowledgeError(path, "text", f"line {line}: empty text")
            if cat not in known:
                raise KnowledgeError(path, "category", f"line {line}: unknown category '{cat}' "
                                                       f"(categories.yml has: {'、'.join(known)})")
            rows.append((text, cat))
    if not rows:
        raise KnowledgeError(path, "(file)", "no rows")
    return rows


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
