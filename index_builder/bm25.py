"""Okapi BM25 over token lists, stored as a compressed-sparse-row inverted index (npz).

Postings live in flat numpy arrays (one slice of doc ids and term frequencies per token), so
scoring a query costs a few vectorised operations per query token even at 200,000 passages,
and "does passage i contain token t" is a binary search in t's sorted doc ids.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

# k1 and b: `python -m bench.retrieval --study` compared k1 in {0.9, 1.2, 1.5, 2.0} and b in
# {0.3, 0.5, 0.75, 1.0} on the full NCP corpus and the guide set; the textbook values won.
K1, B = 1.2, 0.75


class BM25:
    def __init__(self, vocab: dict[str, int], offsets: np.ndarray, doc_ids: np.ndarray, tfs: np.ndarray,
                 doc_len: np.ndarray, k1: float = K1, b: float = B):
        self.vocab, self.k1, self.b = vocab, k1, b
        self.offsets, self.doc_ids, self.tfs = offsets, doc_ids, tfs
        self.doc_len = np.asarray(doc_len, dtype=np.float32)
        self.n = len(self.doc_len)
        self.avgdl = float(self.doc_len.mean()) if self.n else 0.0
        self._norm = self.k1 * (1 - self.b + self.b * self.doc_len / max(self.avgdl, 1e-9))

    @classmethod
    def build(cls, docs: list[list[str] | Counter], k1: float = K1, b: float = B) -> "BM25":
        """From each document's tokens, or its term counts (a Counter, as `documents` gives)."""
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = []
        for i, toks in enumerate(docs):
            counts = toks if isinstance(toks, Counter) else Counter(toks)
            lengths.append(sum(counts.values()))
            for tok, tf in counts.items():
                postings.setdefault(tok, []).append((i, tf))
        vocab = {t: j for j, t in enumerate(sorted(postings))}
        sizes = np.array([len(postings[t]) for t in vocab], dtype=np.int64)
        offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        doc_ids = np.empty(int(offsets[-1]), dtype=np.int32)
        tfs = np.empty(int(offsets[-1]), dtype=np.float32)
        for t, j in vocab.items():
            plist = postings[t]  # doc ids ascending: docs were visited in order
            doc_ids[offsets[j]:offsets[j + 1]] = [p[0] for p in plist]
            tfs[offsets[j]:offsets[j + 1]] = [p[1] for p in plist]
        return cls(vocab, offsets, doc_ids, tfs, np.array(lengths, dtype=np.float32), k1, b)

    def documents(self, keys: list[str]) -> dict[str, Counter]:
        """Each document's term counts, by the key given for its position (inverts the postings)."""
        tokens = list(self.vocab)
        token_of = np.repeat(np.arange(len(tokens)), np.diff(self.offsets))
        order = np.argsort(self.doc_ids, kind="stable")
        bounds = np.searchsorted(self.doc_ids[order], np.arange(self.n + 1))
        out = {}
        for i, key in enumerate(keys):
            sl = order[bounds[i]:bounds[i + 1]]
            out[key] = Counter({tokens[t]: int(tf) for t, tf in zip(token_of[sl], self.tfs[sl])})
        return out

    def df(self, token: str) -> int:
        j = self.vocab.get(token)
        return 0 if j is None else int(self.offsets[j + 1] - self.offsets[j])

    def idf(self, token: str) -> float:
        df = self.df(token)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted doc ids, term frequencies) of one token; empty arrays when unknown."""
        j = self.vocab.get(token)
        if j is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        lo, hi = self.offsets[j], self.offsets[j + 1]
        return self.doc_ids[lo:hi], self.tfs[lo:hi]

    def contains(self, token: str, doc: np.ndarray) -> np.ndarray:
        """For each passage index in `doc`, whether it holds `token`."""
        ids, _ = self.postings(token)
        if not len(ids):
            return np.zeros(len(doc), dtype=bool)
        pos = np.searchsorted(ids, doc)
        return ids[np.minimum(pos, len(ids) - 1)] == doc

    def scores(self, query: list[str]) -> np.ndarray:
        """Score every document; repeated query tokens count once."""
        out = np.zeros(self.n, dtype=np.float32)
        for tok in set(query):
            ids, tf = self.postings(tok)
            if len(ids):
                out[ids] += self.idf(tok) * tf * (self.k1 + 1) / (tf + self._norm[ids])
        return out

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
            np.savez(fh, vocab=np.frombuffer(json.dumps(list(self.vocab), ensure_ascii=False).encode(), np.uint8),
                     offsets=self.offsets, doc_ids=self.doc_ids, tfs=self.tfs, doc_len=self.doc_len,
                     params=np.array([self.k1, self.b], dtype=np.float64))

    @classmethod
    def load(cls, path: Path) -> "BM25":
        with np.load(path, allow_pickle=False) as data:
            tokens = json.loads(data["vocab"].tobytes().decode())
            k1, b = (float(x) for x in data["params"])
            return cls({t: j for j, t in enumerate(tokens)}, data["offsets"], data["doc_ids"], data["tfs"],
                       data["doc_len"], k1, b)
