"""Build an index folder from a knowledge base: passages, FAISS, BM25, manifest.

Incremental: vectors of passages whose content hash is unchanged are copied from the
previous index instead of being re-embedded. Atomic: every build is written to a fresh
folder beside the target, and the target (a symlink) is switched to it in one rename, so a
failed build leaves the previous index untouched and readers never see half an index.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import dense
from .bm25 import BM25
from .encoders import DEFAULT_ENCODER, Encoder, load_encoder
from .knowledge import load_source, load_sources
from .normalize import normalize
from .passages import Passage, index_text, split, user_dictionary_terms
from .tokens import Tokenizer, write_user_dictionary

FORMAT_VERSION = 2  # 2: BM25 as numpy arrays (bm25.npz)
KEEP_BUILDS = 2  # the live build and the one before it
BATCH = 32

MANIFEST, PASSAGES, FAISS_FILE, BM25_FILE, USERDICT = (
    "manifest.json", "passages.jsonl", "dense.faiss", "bm25.npz", "userdict.txt")


@dataclass
class BuildReport:
    index_dir: Path
    build_dir: Path
    passages: int
    embedded: int
    reused: int
    seconds: float


def builds_root(out: Path) -> Path:
    return out.parent / f".{out.name}.builds"


def build_index(source: Path | str, out: Path | str, encoder: Encoder | str = DEFAULT_ENCODER,
                progress: bool = True, log: Callable[[str], None] = lambda _m: None,
                extra: tuple[Path | str, ...] = ()) -> BuildReport:
    """Index `source` (and any `extra` folders or FAQ tables beside it) into `out`."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    kb = load_sources([source, *extra]) if extra else load_source(source)  # raises before anything is written
    for refused in kb.refused:
        log(f"refused {refused.path}: {refused.reason}")
    passages = split(kb)
    for p in passages:  # external FAQ tables may be Traditional or full-width; our guides are not
        if p.kind == "faq":
            p.text = normalize(p.text)
    enc = load_encoder(encoder) if isinstance(encoder, str) else encoder
    previous = _previous_vectors(out, enc)
    vectors, embedded = _embed(passages, enc, previous, progress)
    log(f"{len(passages)} passages: {embedded} embedded, {len(passages) - embedded} reused")

    root = builds_root(out)
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    build_dir = root / f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    build_dir.mkdir()
    try:
        terms = user_dictionary_terms(kb)
        write_user_dictionary(terms, build_dir / USERDICT)
        BM25.build(_tokenised(passages, terms, out)).save(build_dir / BM25_FILE)
        index = dense.build(vectors)
        dense.save(index, build_dir / FAISS_FILE)
        with (build_dir / PASSAGES).open("w", encoding="utf-8") as fh:
            for p in passages:
                fh.write(json.dumps({**p.to_dict(), "key": p.key}, ensure_ascii=False) + "\n")
        manifest = {
            "format_version": FORMAT_VERSION,
            "encoder": enc.name,
            "encoder_version": enc.version,
            "dim": enc.dim,
            "faiss_index": type(index).__name__,
            "corpus_hash": _corpus_hash(passages),
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            "source": str(source),
            "extra_sources": [str(e) for e in extra],
            "refused": [{"path": r.path, "reason": r.reason} for r in kb.refused],
            "counts": {"guides": len(kb.guides), "policy_sections": len(kb.policies), "faq_rows": len(kb.faqs),
                       "documents": len(kb.documents), "refused": len(kb.refused),
                       "passages": len(passages), "embedded": embedded, "reused": len(passages) - embedded,
                       "user_terms": len(terms)},
        }
        (build_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    _swap(out, build_dir)
    _prune(root, keep=build_dir)
    return BuildReport(out, build_dir, len(passages), embedded, len(passages) - embedded,
                       time.perf_counter() - started)


def _corpus_hash(passages: list[Passage]) -> str:
    h = hashlib.sha256()
    for p in passages:
        h.update(p.key.encode())
    return h.hexdigest()


def _previous_vectors(out: Path, enc: Encoder) -> dict[str, np.ndarray]:
    """Vectors of the live index by passage key, when it was built with the same encoder."""
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if (manifest.get("encoder"), manifest.get("encoder_version")) != (enc.name, enc.version):
            return {}
        keys = [json.loads(line)["key"] for line in (out / PASSAGES).read_text(encoding="utf-8").splitlines()]
        index = dense.load(out / FAISS_FILE)
        if index.ntotal != len(keys):
            return {}
        vectors = index.reconstruct_n(0, index.ntotal)
    except (OSError, ValueError, KeyError, RuntimeError):
        return {}  # no usable previous index: embed everything
    return dict(zip(keys, vectors))


def _tokenised(passages: list[Passage], terms: list[str], out: Path) -> list:
    """Each passage's BM25 terms, taken from the live index for unchanged passages when the user
    dictionary is the same: at 200k passages, tokenising is most of a rebuild's time."""
    previous: dict[str, Counter] = {}
    try:
        old_terms = [line.split()[0] for line in (out / USERDICT).read_text(encoding="utf-8").splitlines() if line.strip()]
        if old_terms == terms:
            keys = [json.loads(line)["key"] for line in (out / PASSAGES).read_text(encoding="utf-8").splitlines()]
            previous = BM25.load(out / BM25_FILE).documents(keys)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        previous = {}
    tokenizer = None
    docs = []
    for p in passages:
        if p.key in previous:
            docs.append(previous[p.key])
        else:
            tokenizer = tokenizer or Tokenizer(terms)
            docs.append(tokenizer.tokens(normalize(index_text(p))))
    return docs


def _embed(passages: list[Passage], enc: Encoder, previous: dict[str, np.ndarray],
           progress: bool) -> tuple[np.ndarray, int]:
    vectors = np.zeros((len(passages), enc.dim), dtype=np.float32)
    todo = []
    for i, p in enumerate(passages):
        if p.key in previous:
            vectors[i] = previous[p.key]
        else:
            todo.append(i)
    batches = [todo[s: s + BATCH] for s in range(0, len(todo), BATCH)]
    if progress and len(batches) > 1:
        from tqdm import tqdm

        batches = tqdm(batches, desc="embedding", unit="batch")
    for batch in batches:
        vectors[batch] = enc.encode_passages([index_text(passages[i]) for i in batch])
    return vectors, len(todo)


def _swap(out: Path, build_dir: Path) -> None:
    """Point `out` at build_dir in one atomic rename of a symlink."""
    target = os.path.relpath(build_dir, out.parent)
    if out.exists() and not out.is_symlink():
        # A plain folder from elsewhere: keep it beside the builds rather than delete it.
        out.rename(builds_root(out) / f"replaced-{build_dir.name}")
    tmp_link = out.parent / f".{out.name}.link-{os.getpid()}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    os.symlink(target, tmp_link)
    os.replace(tmp_link, out)


def _prune(root: Path, keep: Path) -> None:
    builds = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith("replaced-")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    survivors = {keep} | set(builds[:KEEP_BUILDS])
    for p in builds:
        if p not in survivors:
            shutil.rmtree(p, ignore_errors=True)
