"""Retrieval evaluation: recall@k and MRR@10 over distinct doc ids, with latency."""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Query:
    query: str
    expected: frozenset[str]


def load_queries(path: Path | str) -> list[Query]:
    """TSV with header `query<TAB>expected`; expected holds doc ids separated by '|'."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames is None or not {"query", "expected"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: header must be 'query<TAB>expected'")
        out = []
        for n, row in enumerate(reader, 2):
            expected = frozenset(x.strip() for x in (row["expected"] or "").split("|") if x.strip())
            if not expected:
                raise ValueError(f"{path}: line {n}: no expected doc id")
            out.append(Query(row["query"] or "", expected))
    return out


def first_hit_rank(ranked_doc_ids: list[str], expected: frozenset[str]) -> int | None:
    """1-based rank of the first expected doc among distinct ranked doc ids."""
    for rank, doc_id in enumerate(dict.fromkeys(ranked_doc_ids), 1):
        if doc_id in expected:
            return rank
    return None


def metrics(ranks: list[int | None], latencies_ms: list[float]) -> dict[str, float]:
    n = len(ranks)

    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n if n else 0.0

    mrr = sum(1 / r for r in ranks if r is not None and r <= 10) / n if n else 0.0
    lat = np.asarray(latencies_ms or [0.0])
    return {"n": n, "recall@1": round(recall(1), 4), "recall@5": round(recall(5), 4),
            "recall@10": round(recall(10), 4), "mrr@10": round(mrr, 4),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2)}


def evaluate(retriever, queries: list[Query], mode: str = "hybrid", depth: int = 200) -> dict[str, float]:
    """Run every query through `retriever.search` and score the distinct doc ids it ranks."""
    ranks, latencies = [], []
    for q in queries:
        t0 = time.perf_counter()
        result = retriever.search(q.query, k=depth, mode=mode)
        latencies.append((time.perf_counter() - t0) * 1000)
        ranks.append(first_hit_rank(result.doc_ids(), q.expected))
    return metrics(ranks, latencies)
