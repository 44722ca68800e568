"""Add documents to a deployment's knowledge base: validate each file, copy it into the
documents folder, rebuild the index incrementally (only the new passages are embedded) and
switch to it atomically. A refused file or a failed build leaves the folder and the live
index as they were; a running assistant picks up the new build on its next question."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .builder import MANIFEST, build_index
from .encoders import Encoder
from .documents import DocumentRefused, is_document, load_document
from .passages import document_passages


@dataclass
class UploadReport:
    added: list[str] = field(default_factory=list)  # doc ids
    passages: int = 0  # passages of the added documents
    embedded: int = 0  # passages embedded by the rebuild (the rest were reused)
    total: int = 0
    seconds: float = 0.0


def _sources(index: Path, folder: Path, default_source: Path) -> tuple[Path, tuple[Path, ...]]:
    """The sources the live index was built from, plus the documents folder if none covers it."""
    try:
        manifest = json.loads((index / MANIFEST).read_text(encoding="utf-8"))
        source = Path(manifest["source"])
        extra = [Path(e) for e in manifest.get("extra_sources", [])]
    except (OSError, ValueError, KeyError):
        source, extra = default_source, []
    covered = any(folder.resolve() in (s.resolve(), (s / "documents").resolve()) for s in (source, *extra))
    return source, tuple(extra + ([] if covered else [folder]))


def add_documents(files: list[Path], folder: Path, index: Path, *, replace: bool = False,
                  default_source: Path = Path("knowledge_base"), encoder: "Encoder | str | None" = None,
                  log: Callable[[str], None] = lambda _m: None) -> UploadReport:
    """Raises DocumentRefused (nothing changed) when a file cannot be read, FileExistsError
    when a document of that name is already there and replace is False."""
    docs = []
    for path in files:
        if not is_document(path):
            raise DocumentRefused(path, "不是支持的文档格式（PDF、Word .docx、HTML、Excel .xlsx、CSV、Markdown、文本）")
        docs.append(load_document(path))  # raises with the reason before anything is copied
    folder.mkdir(parents=True, exist_ok=True)
    existing = {p.stem: p for p in folder.rglob("*") if p.is_file() and is_document(p)}
    for doc in docs:
        if doc.doc_id in existing and not replace:
            raise FileExistsError(f"{existing[doc.doc_id]} already exists (use --replace to update it)")
    placed: list[tuple[Path, Path | None]] = []  # (new file, backup of the file it replaced)
    try:
        for path, doc in zip(files, docs):
            for src in [path, *(path.with_name(path.stem + s) for s in (".meta.yml", ".meta.yaml", ".meta.json"))]:
                if src.exists():
                    placed.append(_place(src, folder / src.name, existing.get(doc.doc_id) if src == path else None))
        source, extra = _sources(index, folder, default_source)
        kwargs = {"encoder": encoder} if encoder else _encoder_of(index)
        report = build_index(source, index, progress=False, log=log, extra=extra, **kwargs)
    except BaseException:
        for new, backup in reversed(placed):
            new.unlink(missing_ok=True)
            if backup is not None:
                os.replace(backup, backup.with_name(backup.name.removeprefix(".replaced-")))
        raise
    for _new, backup in placed:
        if backup is not None:
            backup.unlink(missing_ok=True)
    return UploadReport([d.doc_id for d in docs], sum(len(document_passages(d)) for d in docs),
                        report.embedded, report.passages, report.seconds)


def _place(src: Path, dest: Path, old: Path | None) -> tuple[Path, Path | None]:
    """Copy src to dest through a temporary name (no half-written file is ever read)."""
    backup = None
    if old is not None and old.exists():
        backup = old.with_name(".replaced-" + old.name)
        os.replace(old, backup)
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest, backup


def _encoder_of(index: Path) -> dict:
    try:
        return {"encoder": json.loads((index / MANIFEST).read_text(encoding="utf-8"))["encoder"]}
    except (OSError, ValueError, KeyError):
        return {}
