"""Exact (IndexFlatIP) vs HNSW on random normalised vectors: query latency and recall@10
of HNSW against the exact answer, at growing corpus sizes. Sets dense.EXACT_MAX.

    python -m bench.faiss_crossover
"""
from __future__ import annotations

import json
import time

import faiss
import numpy as np


def main(dim: int = 384, sizes=(1_000, 10_000, 50_000, 200_000), n_queries: int = 200) -> None:
    rng = np.random.default_rng(0)
    for n in sizes:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = x[rng.choice(n, n_queries)] + 0.1 * rng.standard_normal((n_queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        row = {"n": n}
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        t = time.perf_counter()
        exact = np.vstack([flat.search(q[i:i + 1], 10)[1] for i in range(n_queries)])
        row["flat_ms_per_query"] = round((time.perf_counter() - t) / n_queries * 1000, 3)
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction, hnsw.hnsw.efSearch = 80, 64
        t = time.perf_counter()
        hnsw.add(x)
        row["hnsw_build_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        approx = np.vstack([hnsw.search(q[i:i + 1], 10)[1] for i in range(n_queries)])
        row["hnsw_ms_per_query"] = round((time.perf_counter() - t) / n_queries * 1000, 3)
        row["hnsw_recall@10"] = round(float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])), 3)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
