"""Hybrid retrieval: dense (FAISS) and BM25 (jieba) scores fused, with a confidence the
assistant uses to choose between answering and handing off to a person."""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import dense
from .bm25 import BM25
from .builder import BM25_FILE, FAISS_FILE, FORMAT_VERSION, MANIFEST, PASSAGES, USERDICT
from .encoders import Encoder, load_encoder
from .normalize import MAX_QUERY_CHARS, is_meaningful, normalize_query
from .passages import Passage
from .tokens import Tokenizer

MODES = ("hybrid", "dense", "bm25")
# Fusion: score = ALPHA * dense_norm + (1 - ALPHA) * bm25_norm over the union of both
# candidate lists; tuned on knowledge_base/eval/questions.tsv and ncp_dev by
# `python -m bench.tune_fusion` (see README for the figures).
ALPHA = 0.7
CANDIDATES = 100
# Confidence is a logistic function of the top dense similarity and of how much of the
# query's BM25 weight the best passage covers; fitted by bench.tune_fusion (README).
CONF_WEIGHTS = (8.35, 3.8, -8.27)  # (dense_top, coverage, bias)
CONFIDENT = 0.5  # at or above: answer; below: say so and offer 12345 / a person


class IndexNotReady(RuntimeError):
    """The index folder is missing or unreadable; the message says how to build it."""


@dataclass
class Hit:
    passage: Passage
    score: float
    dense: float
    bm25: float
    index: int  # position in Retriever.passages

    def to_dict(self) -> dict:
        p = self.passage
        return {"doc_id": p.doc_id, "title": p.title, "section": p.section, "citation": p.citation,
                "score": round(self.score, 4), "dense": round(self.dense, 4), "bm25": round(self.bm25, 4),
                "kind": p.kind, "text": p.text, "meta": p.meta}


@dataclass
class SearchResult:
    query: str  # as normalised and searched
    hits: list[Hit] = field(default_factory=list)
    confidence: float = 0.0
    truncated: bool = False
    reason: str | None = None  # "empty" when nothing searchable was given

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT

    def top_docs(self) -> list[Hit]:
        """The best-ranked hit of each distinct document, in rank order."""
        first: dict[str, Hit] = {}
        for h in self.hits:
            first.setdefault(h.passage.doc_id, h)
        return list(first.values())

    def doc_ids(self) -> list[str]:
        """Distinct doc ids in rank order."""
        return [h.passage.doc_id for h in self.top_docs()]

    def to_dict(self) -> dict:
        return {"query": self.query, "confidence": round(self.confidence, 4), "confident": self.confident,
                "truncated": self.truncated, "reason": self.reason, "hits": [h.to_dict() for h in self.hits]}


@dataclass
class Query:
    """A query as normalised, tokenised for BM25 and embedded (None: nothing to search)."""
    text: str
    truncated: bool
    tokens: list[str]
    vector: np.ndarray | None


def _build_hint(path: Path) -> str:
    return f"build it with: python -m index_builder build --source knowledge_base --out {path}"


class Retriever:
    """Loads one index folder once; `search` is thread-safe."""

    def __init__(self, index_dir: Path | str, encoder: Encoder | None = None, alpha: float = ALPHA):
        self.index_dir = Path(index_dir)
        self.manifest = self._read_manifest()
        try:
            self.passages = [Passage(**{k: v for k, v in json.loads(line).items() if k != "key"})
                             for line in (self.index_dir / PASSAGES).read_text(encoding="utf-8").splitlines()]
            self.bm25 = BM25.load(self.index_dir / BM25_FILE)
            self.faiss = dense.load(self.index_dir / FAISS_FILE)
            self.tokenizer = Tokenizer.from_file(self.index_dir / USERDICT)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexNotReady(f"index at {self.index_dir} is corrupt ({exc}); {_build_hint(self.index_dir)}") from exc
        if self.faiss.ntotal != len(self.passages) or self.bm25.n != len(self.passages):
            raise IndexNotReady(f"index at {self.index_dir} is inconsistent; {_build_hint(self.index_dir)}")
        self.encoder = encoder or load_encoder(self.manifest["encoder"])
        if self.encoder.dim != self.manifest["dim"]:
            raise IndexNotReady(f"index at {self.index_dir} was built with {self.manifest['encoder']} "
                                f"(dim {self.manifest['dim']}), not {self.encoder.name}; {_build_hint(self.index_dir)}")
        self.alpha = alpha
        self._lock = threading.Lock()  # the native encoders are not re-entrant
        self._by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(self.passages):
            self._by_doc.setdefault(p.doc_id, []).append(i)

    def _read_manifest(self) -> dict:
        path = self.index_dir / MANIFEST
        if not path.exists():
            raise IndexNotReady(f"no index at {self.index_dir}; {_build_hint(self.index_dir)}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexNotReady(f"index manifest {path} is corrupt; {_build_hint(self.index_dir)}") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexNotReady(f"index at {self.index_dir} has an old format; {_build_hint(self.index_dir)}")
        return manifest

    # ------------------------------------------------------------------ search

    def prepare(self, query: str) -> "Query":
        """Normalise, tokenise and embed a query once; `search` and `search_within` reuse it."""
        text, truncated = normalize_query(query or "", MAX_QUERY_CHARS)
        if not is_meaningful(text):
            return Query(text, truncated, [], None)
        with self._lock:
            qvec = self.encoder.encode_queries([text])[0]
        return Query(text, truncated, self.tokenizer.tokens(text), qvec)

    def search(self, query: "str | Query", k: int = 5, mode: str = "hybrid") -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if isinstance(query, str):
            if mode == "bm25":  # no embedding needed
                text, truncated = normalize_query(query or "", MAX_QUERY_CHARS)
                query = Query(text, truncated, self.tokenizer.tokens(text) if is_meaningful(text) else [], None)
            else:
                query = self.prepare(query)
        text, truncated, tokens = query.text, query.truncated, query.tokens
        if not is_meaningful(text):
            return SearchResult(text, truncated=truncated, reason="empty")
        qvec = query.vector if mode != "bm25" else None
        bm25_all = self.bm25.scores(tokens) if mode != "dense" else np.zeros(len(self.passages), np.float32)
        dense_scores: dict[int, float] = {}
        if qvec is not None:
            scores, ids = dense.search(self.faiss, qvec, CANDIDATES)
            dense_scores = dict(zip(ids.tolist(), scores.tolist()))
        candidates = set(dense_scores)
        if mode != "dense":
            top_bm25 = np.argsort(-bm25_all)[:CANDIDATES]
            candidates |= {int(i) for i in top_bm25 if bm25_all[i] > 0}
        if not candidates:
            return SearchResult(text, truncated=truncated, confidence=0.0)
        hits = self._rank(np.fromiter(candidates, dtype=np.int64), bm25_all, dense_scores, qvec, mode, k)
        confidence = self._confidence(tokens, hits, qvec is not None)
        return SearchResult(text, hits, confidence, truncated)

    def search_within(self, query: "str | Query", doc_ids: list[str], k: int = 5) -> list[Hit]:
        """Hybrid ranking of the passages of the given documents only: which section of the
        guide in context answers a follow-up, or which of the offered guides a reply means."""
        query = self.prepare(query) if isinstance(query, str) else query
        ids = np.array([i for d in doc_ids for i in self._by_doc.get(d, [])], dtype=np.int64)
        if not len(ids) or not is_meaningful(query.text):
            return []
        bm25_all = self.bm25.scores(query.tokens)
        return self._rank(ids, bm25_all, {}, query.vector, "hybrid" if query.vector is not None else "bm25", k)

    def _rank(self, ids: np.ndarray, bm25_all: np.ndarray, dense_scores: dict[int, float],
              qvec: np.ndarray | None, mode: str, k: int) -> list[Hit]:
        if qvec is not None:  # dense score for candidates the vector search did not return
            missing = [i for i in ids.tolist() if i not in dense_scores]
            if missing:
                vecs = np.vstack([self.faiss.reconstruct(int(i)) for i in missing])
                dense_scores.update(zip(missing, (vecs @ qvec).tolist()))
        d = np.array([dense_scores.get(int(i), 0.0) for i in ids], dtype=np.float32)
        b = bm25_all[ids]
        fused = self._fuse(d, b, mode)
        order = np.argsort(-fused, kind="stable")[:k]
        return [Hit(self.passages[ids[j]], float(fused[j]), float(d[j]), float(b[j]), int(ids[j])) for j in order]

    def _fuse(self, d: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
        if mode == "dense":
            return d
        bmax = float(b.max()) if len(b) else 0.0
        bn = b / bmax if bmax > 0 else b
        if mode == "bm25":
            return bn
        dmin, dmax = float(d.min()), float(d.max())
        dn = (d - dmin) / (dmax - dmin) if dmax > dmin else np.ones_like(d)
        return self.alpha * dn + (1 - self.alpha) * bn

    def coverage(self, tokens: list[str], passage_index: int) -> float:
        """Share of the query's IDF weight whose tokens occur in the passage (0..1)."""
        unique = set(tokens)
        if not unique:
            return 0.0
        weights = {t: self.bm25.idf(t) if t in self.bm25.postings else math.log(1 + self.bm25.n) for t in unique}
        present = {t for t in unique if any(doc == passage_index for doc, _ in self.bm25.postings.get(t, ()))}
        total = sum(weights.values())
        return sum(weights[t] for t in present) / total if total else 0.0

    def features(self, tokens: list[str], hits: list[Hit]) -> tuple[float, float]:
        return hits[0].dense, self.coverage(tokens, hits[0].index)

    def _confidence(self, tokens: list[str], hits: list[Hit], has_dense: bool) -> float:
        if not hits:
            return 0.0
        dense_top, cov = self.features(tokens, hits)
        w_d, w_c, bias = CONF_WEIGHTS
        z = w_d * (dense_top if has_dense else 0.8) + w_c * cov + bias
        return 1 / (1 + math.exp(-z))

    def passages_of(self, doc_id: str) -> list[Passage]:
        """All sections of one document, in order (for follow-up buttons and the copilot)."""
        return [self.passages[i] for i in self._by_doc.get(doc_id, [])]
