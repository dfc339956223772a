"""Benchmark: the catalog's FAISS kinds side by side, at 10k and 100k items (1M behind a flag).

Run from the repository root:

    .venv/bin/python bench/bench_catalog.py                       # 10k and 100k, dim 1280
    .venv/bin/python bench/bench_catalog.py --sizes 10000,100000,1000000 --dim 512

What is measured, per catalog size N, with synthetic unit vectors of the real dimension
(EfficientNet-Lite0 pooled features are 1280-d, the default; CLIP ViT-B-32 is 512-d):

- recall@10 of each approximate kind (HNSW at several efSearch, HNSW + 8-bit scalar
  quantization, flat + 8-bit) against exact flat search, over held-out queries;
- single-query latency p50/p99 (one query per call, one thread: a server answers one pin at a
  time per worker), batched throughput (all queries in one call, all threads);
- build (= insert) throughput of each index, and durable upsert throughput through
  ``Catalog.upsert`` (write-ahead log fsync per batch);
- memory per item: the serialized index's bytes / N (vectors + graph + id map).

Data: ``lowrank`` (default): each vector is a random point of a 64-dimensional Gaussian
(variances decaying like real embedding spectra) mapped into ``dim`` dimensions by a fixed
random projection, plus isotropic noise carrying ~10% of the energy, then normalized; queries
are fresh draws. Real image embeddings have a low intrinsic dimension like this (tens), so
neighbours are meaningfully closer than the rest; this is a model of them, not real features.
``uniform`` (random directions) is the worst case for any graph index (in 1280-d every point is
nearly equidistant from every other) and is there to show it, not as a realistic figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vision.catalog import Catalog, CatalogItem, IndexConfig  # noqa: E402
from vision.catalog.index import VectorIndex  # noqa: E402

K = 10
INTRINSIC_DIM = 64
NOISE_ENERGY = 0.1
UPSERT_BATCH = 256
UPSERT_ITEMS_MAX = 20_000


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(
    n: int, n_queries: int, dim: int, kind: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = n + n_queries
    if kind == "uniform":
        x = _unit(rng.standard_normal((total, dim), dtype=np.float32))
    else:
        scales = (1.0 / np.sqrt(1.0 + np.arange(INTRINSIC_DIM))).astype(np.float32)
        proj = np.linalg.qr(rng.standard_normal((dim, INTRINSIC_DIM)))[0].astype(np.float32).T
        signal_energy = float(np.sum(scales**2))
        noise_sd = np.sqrt(NOISE_ENERGY / (1 - NOISE_ENERGY) * signal_energy / dim)
        x = np.empty((total, dim), dtype=np.float32)
        step = 50_000
        for s in range(0, total, step):
            m = min(step, total - s)
            z = rng.standard_normal((m, INTRINSIC_DIM), dtype=np.float32) * scales
            noise = rng.standard_normal((m, dim), dtype=np.float32) * noise_sd
            x[s : s + m] = _unit(z @ proj + noise)
    return x[:n], x[n:]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0]) & set(t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


def latency_ms(index: VectorIndex, queries: np.ndarray) -> tuple[float, float]:
    faiss.omp_set_num_threads(1)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], K)
        times.append((time.perf_counter() - t) * 1000)
    faiss.omp_set_num_threads(THREADS)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def build(
    kind: str, compression: str, x: np.ndarray, m: int, ef_c: int
) -> tuple[VectorIndex, float]:
    cfg = IndexConfig(compression=compression, m=m, ef_construction=ef_c)  # type: ignore[arg-type]
    index = VectorIndex(x.shape[1], kind, cfg)  # type: ignore[arg-type]
    t = time.perf_counter()
    index.add(np.arange(len(x)), x)
    return index, time.perf_counter() - t


def upsert_throughput(x: np.ndarray) -> float:
    n = min(len(x), UPSERT_ITEMS_MAX)
    with tempfile.TemporaryDirectory() as tmp:
        cat = Catalog.open(Path(tmp) / "c", space_id="bench", dim=x.shape[1], create=True)
        t = time.perf_counter()
        for s in range(0, n, UPSERT_BATCH):
            ids = range(s, min(n, s + UPSERT_BATCH))
            cat.upsert([CatalogItem(id=f"sku-{i}", category="c") for i in ids], x[s : s + len(ids)])
        dt = time.perf_counter() - t
        cat.close()
    return n / dt


def _row(n: int, name: str, ef: int | None, rec: float, lat: tuple[float, float], qps: float,
         insert_rate: float, mem: str) -> list[str]:  # fmt: skip
    return [
        f"{n:,}", name, "-" if ef is None else str(ef), f"{rec:.3f}", f"{lat[0]:.2f}",
        f"{lat[1]:.2f}", f"{qps:,.0f}", f"{insert_rate:,.0f}", mem,
    ]  # fmt: skip


def _bytes_per_item(index: VectorIndex, n: int, dim: int) -> str:
    """Serialized bytes / N; above ``SERIALIZE_MAX_BYTES`` of raw vectors the flat index is not
    serialized (a second multi-GB copy): its size is then vectors + id, computed."""
    if (
        index.kind == "flat"
        and index.config.compression == "none"
        and n * dim * 4 > SERIALIZE_MAX_BYTES
    ):
        return f"{dim * 4 + 8:,} (computed)"
    return f"{len(index.to_bytes()) / n:,.0f}"


def run_size(n: int, args: argparse.Namespace) -> list[list[str]]:
    x, q = make_data(n, args.queries, args.dim, args.data)
    rows: list[list[str]] = []

    def measure(name: str, index: VectorIndex, build_s: float, efs: list[int | None]) -> None:
        mem = _bytes_per_item(index, n, args.dim)
        for ef in efs:
            if ef is not None:
                index.config = IndexConfig(
                    compression=index.config.compression, m=args.m, ef_search=ef
                )
            t = time.perf_counter()
            _, found = index.search(q, K)
            qps = len(q) / (time.perf_counter() - t)
            lat = latency_ms(index, q[: args.latency_queries])
            rows.append(_row(n, name, ef, recall(found, truth), lat, qps, n / build_s, mem))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)

    flat, flat_s = build("flat", "none", x, args.m, args.ef_construction)
    _, truth = flat.search(q, K)
    measure("flat (exact)", flat, flat_s, [None])
    del flat  # one index at a time: at 1M x 1280 each float copy is 5 GB
    if "flat-sq8" in args.cases:
        index, s = build("flat", "sq8", x, args.m, args.ef_construction)
        measure("flat sq8", index, s, [None])
        del index
    if "hnsw" in args.cases:
        index, s = build("hnsw", "none", x, args.m, args.ef_construction)
        measure(f"hnsw M={args.m}", index, s, list(args.ef_search))
        del index
    if "hnsw-sq8" in args.cases:
        index, s = build("hnsw", "sq8", x, args.m, args.ef_construction)
        measure(f"hnsw sq8 M={args.m}", index, s, list(args.ef_search))
        del index
    upsert_rate = upsert_throughput(x)
    rows.append(
        [f"{n:,}", "Catalog.upsert (durable, flat)", "-", "-", "-", "-", "-", f"{upsert_rate:,.0f}", "-"]
    )  # fmt: skip
    return rows


SERIALIZE_MAX_BYTES = 1 << 30
THREADS = 2


def main() -> None:
    global THREADS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="comma-separated catalog sizes")
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--data", choices=("lowrank", "uniform"), default="lowrank")
    p.add_argument(
        "--queries", type=int, default=500, help="held-out queries for recall/throughput"
    )
    p.add_argument("--latency-queries", type=int, default=300)
    p.add_argument("--m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=80)
    p.add_argument(
        "--ef-search", type=lambda s: [int(v) for v in s.split(",")], default=[32, 64, 128]
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--cases",
        type=lambda v: v.split(","),
        default=["flat-sq8", "hnsw", "hnsw-sq8"],
        help="indexes beside exact flat: flat-sq8,hnsw,hnsw-sq8 (default all)",
    )
    args = p.parse_args()
    THREADS = args.threads
    faiss.omp_set_num_threads(THREADS)
    header = [
        "N",
        "index",
        "efSearch",
        "recall@10",
        "p50 ms",
        "p99 ms",
        "batch q/s",
        "insert items/s",
        "bytes/item",
    ]
    rows: list[list[str]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += run_size(n, args)
    load = os.getloadavg()[0]
    print(f"\ndim {args.dim}, {args.data} data, {args.queries} queries, k={K}, "
          f"efConstruction {args.ef_construction}, {THREADS} thread(s) for batches / builds, "
          f"{os.cpu_count()} CPUs, load average at the end {load:.1f}\n")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
