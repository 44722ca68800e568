"""Hybrid retrieval: dense (FAISS) and BM25 (jieba) scores fused, with a confidence the
assistant uses to choose between answering and handing off to a person."""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import answer_types, dense, ranking
from .aspects import ASPECT_SECTION, asked_aspect
from .bm25 import BM25
from .builder import BM25_FILE, FAISS_FILE, FORMAT_VERSION, MANIFEST, PASSAGES, USERDICT
from .encoders import Encoder, load_encoder
from .homophones import HomophoneCorrector
from .normalize import MAX_QUERY_CHARS, is_meaningful, normalize_query
from .passages import Passage
from .rewrite import strip_filler
from .soundalike import SoundAlikeCorrector, for_vocabulary
from .tokens import Tokenizer
from .vocabulary import load_vocabulary

log = logging.getLogger(__name__)
MODES = ranking.MODES
CANDIDATES = 100  # from each side; the re-ranker sees their union
# Confidence without a fitted model (another encoder): a logistic function of the top dense
# similarity and of how much of the query's BM25 weight the best passage covers.
FALLBACK_CONF_WEIGHTS = (8.35, 3.8, -8.27)  # (dense_top, coverage, bias)
FALLBACK_CONFIDENT = 0.5
# ASSISTANT_QUERY_CORRECTION=off searches questions as typed; by default a non-word is searched as
# the common word of the same sound (结昏证 -> 结婚证: soundalike.py), the index's words protected,
# and a service term typed with another tone as the term (居主证 -> 居住证: homophones.py)
QUERY_CORRECTION_ENV = "ASSISTANT_QUERY_CORRECTION"


def query_correction_enabled() -> bool:
    return os.environ.get(QUERY_CORRECTION_ENV, "").strip().lower() not in ("off", "0", "false", "no")


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
    threshold: float = FALLBACK_CONFIDENT  # the retriever's answer/hand-off threshold

    @property
    def confident(self) -> bool:
        return self.confidence >= self.threshold

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

    def __init__(self, index_dir: Path | str, encoder: Encoder | None = None,
                 model: "ranking.RankingModel | None | str" = "auto"):
        self.index_dir = Path(index_dir)
        self.build = os.path.realpath(self.index_dir)  # the build folder the index link points at
        self.manifest = self._read_manifest()
        try:
            self.passages = [Passage(**{k: v for k, v in json.loads(line).items() if k != "key"})
                             for line in (self.index_dir / PASSAGES).read_text(encoding="utf-8").splitlines()]
            self.bm25 = BM25.load(self.index_dir / BM25_FILE)
            self.faiss = dense.load(self.index_dir / FAISS_FILE)
            self.tokenizer = Tokenizer.from_file(self.index_dir / USERDICT)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, zipfile.BadZipFile) as exc:
            raise IndexNotReady(f"index at {self.index_dir} is corrupt ({exc}); {_build_hint(self.index_dir)}") from exc
        if self.faiss.ntotal != len(self.passages) or self.bm25.n != len(self.passages):
            raise IndexNotReady(f"index at {self.index_dir} is inconsistent; {_build_hint(self.index_dir)}")
        self.encoder = encoder or load_encoder(self.manifest["encoder"])
        if self.encoder.dim != self.manifest["dim"]:
            raise IndexNotReady(f"index at {self.index_dir} was built with {self.manifest['encoder']} "
                                f"(dim {self.manifest['dim']}), not {self.encoder.name}; {_build_hint(self.index_dir)}")
        # The fitted adapter, re-ranker and confidence for this encoder (None: plain fusion).
        self.model = ranking.load_for(self.encoder.name, self.encoder.version) if model == "auto" else model
        self.threshold = ranking.threshold(self.model, FALLBACK_CONFIDENT)
        self._lock = threading.Lock()  # the native encoders are not re-entrant
        self._by_doc: dict[str, list[int]] = {}
        for i, p in enumerate(self.passages):
            self._by_doc.setdefault(p.doc_id, []).append(i)
        self._length = np.array([len(p.text) for p in self.passages], dtype=np.float32)
        # passage index -> doc id of the newer version that supersedes its document
        self._superseded = {i: p.meta["superseded_by"] for i, p in enumerate(self.passages)
                            if p.meta.get("superseded_by")}
        self._title_tokens: dict[str, frozenset[str]] = {}
        self._shapes: dict[int, tuple[bool, ...]] = {}  # filled as passages are met
        self._mean: np.ndarray | None = None
        self.query_correction = query_correction_enabled()
        self._corrector: SoundAlikeCorrector | None = None
        self._terms: HomophoneCorrector | None = None
        self._corrector_lock = threading.Lock()

    def stale(self) -> bool:
        """A rebuild (an uploaded document) has switched the index link to a newer build."""
        return os.path.realpath(self.index_dir) != self.build

    def refreshed(self) -> "Retriever":
        """This retriever, or the newer build when the index link was switched (the loaded
        encoder is reused). A newer build that cannot be loaded is logged once and the one
        already loaded keeps serving."""
        if not self.stale():
            return self
        try:
            fresh = Retriever(self.index_dir, encoder=self.encoder)
        except (IndexNotReady, ValueError) as exc:
            log.error("rebuilt index at %s not loaded, keeping the previous one: %s", self.index_dir, exc)
            self.build = os.path.realpath(self.index_dir)
            return self
        log.info("index reloaded from %s (%d passages)", self.index_dir, len(fresh.passages))
        return fresh

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

    def prepare(self, query: str, embed: bool = True) -> "Query":
        """Normalise, strip filler, tokenise and (unless embed=False) embed a query once;
        `search` and `search_within` reuse it."""
        text, truncated = normalize_query(query or "", MAX_QUERY_CHARS)
        if not is_meaningful(text):
            return Query(text, truncated, [], None)
        searched = self.correct(strip_filler(text))
        qvec = None
        if embed:
            with self._lock:
                qvec = self.encoder.encode_queries([searched])[0]
        return Query(text, truncated, self.tokenizer.tokens(searched), qvec)

    def correct(self, text: str) -> str:
        """``text`` with its non-words replaced by the common word of the same sound, never a word
        of this index, then service terms typed with another tone (or a homophone) written as the
        terms; the order voice uses. Built on first use, which the action server makes at start
        (about 1 s)."""
        if not self.query_correction:
            return text
        with self._corrector_lock:
            if self._corrector is None:
                self._corrector = for_vocabulary(self.bm25.vocab)
                self._terms = HomophoneCorrector(load_vocabulary().correction_terms())
        return self._terms.correct(self._corrector.correct(text))

    def topic_vectors(self, texts: list[str], batch: int = 64) -> np.ndarray:
        """Unit vectors of questions for grouping them by meaning (the console's knowledge gaps):
        embedded as retrieval embeds queries, minus the mean passage vector of this index. E5's
        vectors all lie in a narrow cone; centring spreads them, which raised the pairwise F1 of
        same-guide grouping from 0.29 to 0.33 (bench/admin.py --tune)."""
        searched = [strip_filler(normalize_query(t or "", MAX_QUERY_CHARS)[0]) or t for t in texts]
        parts = []
        for i in range(0, len(searched), batch):
            with self._lock:  # one batch at a time: chat queries wait for one batch, not all
                parts.append(self.encoder.encode_queries(searched[i:i + batch]))
        if not parts:
            return np.zeros((0, self.encoder.dim), np.float32)
        centred = np.concatenate(parts) - self.passage_mean()
        return (centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    def passage_mean(self) -> np.ndarray:
        if self._mean is None:
            total, n, step = np.zeros(self.encoder.dim, np.float64), self.faiss.ntotal, 4096
            for i in range(0, n, step):  # in chunks: a large index is not copied at once
                total += self.faiss.reconstruct_n(i, min(step, n - i)).sum(axis=0)
            self._mean = (total / max(n, 1)).astype(np.float32)
        return self._mean

    @property
    def version(self) -> str:
        """Encoder and index build: topic vectors change with either."""
        return f"{self.encoder.version}@{os.path.basename(self.build)}"

    def search(self, query: "str | Query", k: int = 5, mode: str = "hybrid") -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if isinstance(query, str):
            query = self.prepare(query, embed=mode != "bm25")
        text, truncated = query.text, query.truncated
        if not is_meaningful(text):
            return SearchResult(text, truncated=truncated, reason="empty", threshold=self.threshold)
        qvec = self._dense_vector(query, mode)
        ids, d, b = self.gather(query.tokens, qvec, mode)
        if not len(ids):
            return SearchResult(text, truncated=truncated, confidence=0.0, threshold=self.threshold)
        hits, conf_features = self._rank(ids, d, b, mode, k, query, with_confidence=True)
        return SearchResult(text, hits, self._confidence(conf_features), truncated, threshold=self.threshold)

    def search_within(self, query: "str | Query", doc_ids: list[str], k: int = 5) -> list[Hit]:
        """Ranking of the passages of the given documents only: which section of the guide in
        context answers a follow-up, or which of the offered guides a reply means."""
        query = self.prepare(query) if isinstance(query, str) else query
        ids = np.array(sorted({i for d in doc_ids for i in self._by_doc.get(d, [])}), dtype=np.int64)
        if not len(ids) or not is_meaningful(query.text):
            return []
        mode = "hybrid" if query.vector is not None else "bm25"
        qvec = self._dense_vector(query, mode)
        d = self._dense_of(ids, qvec, {}) if qvec is not None else np.zeros(len(ids), np.float32)
        return self._rank(ids, d, self.bm25.scores(query.tokens)[ids], mode, k, query)[0]

    def _dense_vector(self, query: "Query", mode: str) -> np.ndarray | None:
        if query.vector is None or mode == "bm25":
            return None
        return self.model.adapt(query.vector) if self.model is not None and mode == "hybrid" else query.vector

    def gather(self, tokens: list[str], qvec: np.ndarray | None, mode: str = "hybrid"):
        """Candidates of one query: the union of the dense and the BM25 top lists, with both
        scores for every candidate -> (passage indices, dense, bm25)."""
        bm25_all = self.bm25.scores(tokens) if mode != "dense" else None
        dense_scores: dict[int, float] = {}
        if qvec is not None:
            scores, found = dense.search(self.faiss, qvec, CANDIDATES)
            dense_scores = dict(zip(found.tolist(), scores.tolist()))
        candidates = set(dense_scores)
        if bm25_all is not None and len(bm25_all):
            top = np.argpartition(-bm25_all, min(CANDIDATES, len(bm25_all) - 1))[:CANDIDATES]
            candidates |= {int(i) for i in top if bm25_all[i] > 0}
        ids = np.array(sorted(candidates), dtype=np.int64)
        d = self._dense_of(ids, qvec, dense_scores) if qvec is not None else np.zeros(len(ids), np.float32)
        b = bm25_all[ids] if bm25_all is not None else np.zeros(len(ids), np.float32)
        return ids, d, b

    def _dense_of(self, ids: np.ndarray, qvec: np.ndarray, known: dict[int, float]) -> np.ndarray:
        """Dense similarity of each passage in `ids`, computing those the vector search did not return."""
        missing = [i for i in ids.tolist() if i not in known]
        if missing:
            vecs = np.vstack([self.faiss.reconstruct(int(i)) for i in missing])
            known = {**known, **dict(zip(missing, (vecs @ qvec).tolist()))}
        return np.array([known[int(i)] for i in ids], dtype=np.float32)

    def _rank(self, ids: np.ndarray, d: np.ndarray, b: np.ndarray, mode: str, k: int,
              query: "Query", with_confidence: bool = False) -> tuple[list[Hit], np.ndarray | None]:
        if mode == "hybrid" and self.model is not None:
            final, judged = self.model.scores(self.candidates(query, ids, d, b).features)
        else:
            final = d if mode == "dense" else b if mode == "bm25" else ranking.fuse(d, b)
            judged = final  # without a model the confidence reads the ranking's own scores
        final = self._newer_first(ids, final, query.text)
        order = np.argsort(-final, kind="stable")
        # Shown scores are 0..1 within this query's candidates (the dialogue compares gaps).
        lo, hi = float(final.min()), float(final.max())
        shown = (final - lo) / (hi - lo) if hi > lo else np.ones_like(final)
        hits = [Hit(self.passages[ids[j]], float(shown[j]), float(d[j]), float(b[j]), int(ids[j])) for j in order[:k]]
        conf = self.confidence_features(query, ids, judged, d, order, mode) if with_confidence else None
        return hits, conf

    def _newer_first(self, ids: np.ndarray, final: np.ndarray, text: str) -> np.ndarray:
        """A document that a newer version of the same regulation supersedes ranks just below
        that version's best passage, unless the question names it (its year or 文号)."""
        if not self._superseded:
            return final
        old: dict[str, tuple[str, list[int]]] = {}
        for j, i in enumerate(ids.tolist()):
            if i in self._superseded:
                old.setdefault(self.passages[i].doc_id, (self._superseded[i], []))[1].append(j)
        if not old:
            return final
        final = final.copy()
        for doc_id, (newer, rows) in old.items():
            meta = self.passages[ids[rows[0]]].meta
            year, number = (meta.get("date") or "")[:4], meta.get("doc_number") or ""
            if (year and year in text) or (number and number in text):
                continue
            of_newer = np.isin(ids, self._by_doc.get(newer, []))
            if not of_newer.any():
                continue
            lift = float(final[rows].max()) - float(final[of_newer].max())
            if lift >= 0:
                final[rows] -= lift + 1e-4
        return final

    def confidence_features(self, query: "Query", ids: np.ndarray, final: np.ndarray, d: np.ndarray,
                            order: np.ndarray, mode: str) -> np.ndarray:
        """ranking.CONF_FEATURES of a ranked candidate list: `order` is the ranking, best first;
        `final` the scores the confidence reads (the model's linear score when there is one)."""
        top = order[0]
        top_doc = self.passages[ids[top]].doc_id
        rival = next((j for j in order[1:] if self.passages[ids[j]].doc_id != top_doc), None)
        margin = float(final[top] - final[rival]) if rival is not None else 1.0
        dense_top = float(d[top]) if query.vector is not None and mode != "bm25" else 0.8
        cov = float(self.coverage(query.tokens, ids[top:top + 1])[0])
        return np.array([float(final[top]), margin, dense_top, cov], dtype=np.float32)

    def _confidence(self, conf_features: np.ndarray) -> float:
        if self.model is not None:
            return self.model.confidence(conf_features)
        w_d, w_c, bias = FALLBACK_CONF_WEIGHTS
        return 1 / (1 + math.exp(-(w_d * conf_features[2] + w_c * conf_features[3] + bias)))

    # ------------------------------------------------------------------ features

    def candidates(self, query: "Query", ids: np.ndarray, d: np.ndarray, b: np.ndarray) -> ranking.Candidates:
        """The re-ranker's features for these candidate passages (ranking.FEATURES)."""
        coverage, rare = self.coverage(query.tokens, ids, rare=True)
        asked = ASPECT_SECTION.get(asked_aspect(query.text) or "")
        content = set(query.tokens)
        title = np.zeros(len(ids), np.float32)
        cue = np.zeros(len(ids), np.float32)
        kinds = []
        for j, i in enumerate(ids.tolist()):
            p = self.passages[i]
            kinds.append(p.kind)
            names = self._names(p)
            if names and content:
                title[j] = len(content & names) / len(content)
            cue[j] = float(asked is not None and p.section == asked)
        wanted = answer_types.asked_types(query.text)
        types = np.zeros((len(ids), len(answer_types.NAMES)), np.float32)
        if any(wanted):
            for j, i in enumerate(ids.tolist()):
                types[j] = answer_types.match(wanted, self._shape(i))
        feats = ranking.candidate_features(d, b, coverage, rare, title, cue, self._length[ids], kinds, types)
        return ranking.Candidates(ids, feats)

    def _shape(self, i: int) -> tuple[bool, ...]:
        """A passage's answer shape (answer_types.shape), computed the first time it is needed."""
        shape = self._shapes.get(i)
        if shape is None:
            shape = self._shapes[i] = answer_types.shape(self.passages[i].text)
        return shape

    def _names(self, p: Passage) -> frozenset[str]:
        """Tokens of what a document is called: its title and keywords (none for a FAQ row
        without a question, whose title is only its id)."""
        if p.doc_id not in self._title_tokens:
            if p.kind == "faq" and p.title == p.doc_id:
                names: frozenset[str] = frozenset()
            else:
                first = self.passages[self._by_doc[p.doc_id][0]]
                names = frozenset(self.tokenizer.tokens(" ".join([p.title, *first.meta.get("keywords", [])])))
            self._title_tokens[p.doc_id] = names
        return self._title_tokens[p.doc_id]

    def coverage(self, tokens: list[str], ids: np.ndarray, rare: bool = False):
        """Share of the query's IDF weight whose tokens occur in each passage (0..1); with
        rare=True also the share of its three rarest tokens' weight."""
        unique = list(dict.fromkeys(tokens))
        ids = np.asarray(ids, dtype=np.int64)
        if not unique or not len(ids):
            zero = np.zeros(len(ids), np.float32)
            return (zero, zero) if rare else zero
        weights = np.array([self.bm25.idf(t) if self.bm25.df(t) else math.log(1 + self.bm25.n) for t in unique])
        present = np.stack([self.bm25.contains(t, ids) for t in unique]).astype(np.float32)
        cov = weights @ present / weights.sum()
        if not rare:
            return cov
        top = np.argsort(-weights)[:3]
        return cov, weights[top] @ present[top] / weights[top].sum()

    def passages_of(self, doc_id: str) -> list[Passage]:
        """All sections of one document, in order (for follow-up buttons and the copilot)."""
        return [self.passages[i] for i in self._by_doc.get(doc_id, [])]
