"""Okapi BM25 over token lists, stored as a compact inverted index (JSON)."""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np


class BM25:
    def __init__(self, postings: dict[str, list[tuple[int, int]]], doc_len: list[int], k1: float = 1.2, b: float = 0.75):
        self.postings, self.k1, self.b = postings, k1, b
        self.doc_len = np.asarray(doc_len, dtype=np.float32)
        self.n = len(doc_len)
        self.avgdl = float(self.doc_len.mean()) if self.n else 0.0

    @classmethod
    def build(cls, docs: list[list[str]]) -> "BM25":
        postings: dict[str, list[tuple[int, int]]] = {}
        for i, toks in enumerate(docs):
            for tok, tf in Counter(toks).items():
                postings.setdefault(tok, []).append((i, tf))
        return cls(postings, [len(d) for d in docs])

    def idf(self, token: str) -> float:
        df = len(self.postings.get(token, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: list[str]) -> np.ndarray:
        """Score every document; repeated query tokens count once."""
        out = np.zeros(self.n, dtype=np.float32)
        if not self.n:
            return out
        norm = self.k1 * (1 - self.b + self.b * self.doc_len / max(self.avgdl, 1e-9))
        for tok in set(query):
            plist = self.postings.get(tok)
            if not plist:
                continue
            ids = np.fromiter((p[0] for p in plist), dtype=np.int64, count=len(plist))
            tf = np.fromiter((p[1] for p in plist), dtype=np.float32, count=len(plist))
            out[ids] += self.idf(tok) * tf * (self.k1 + 1) / (tf + norm[ids])
        return out

    def save(self, path: Path) -> None:
        data = {"k1": self.k1, "b": self.b, "doc_len": self.doc_len.astype(int).tolist(), "postings": self.postings}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "BM25":
        data = json.loads(path.read_text(encoding="utf-8"))
        postings = {t: [tuple(p) for p in plist] for t, plist in data["postings"].items()}
        return cls(postings, data["doc_len"], data["k1"], data["b"])
