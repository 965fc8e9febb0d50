"""MIRACL-scale search on synthetic embeddings: time and peak memory of the sharded exact search and of
IVF-PQ against the corpus size on disk, and IVF-PQ's recall of the exact top 100.

    python bench/miracl_scale.py --passages 1000000 --dim 384 --shard-size 100000 --queries 1000

IVF-PQ: nlist 4 sqrt(n), --pq-bytes, --nprobe, 200,000 training vectors; also with refine 4 (the top 4k
candidates re-scored exactly from the shards). Vectors: unit-normalised mixtures of 2,000 cluster centres with noise (seeded), written as .npy shards
the way miracl_encode writes them. Each measurement runs in its own process so its peak RSS is its own.
Prints one JSON record; with --out also writes it.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(root: Path, n: int, dim: int, shard_size: int, n_queries: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    paths = []
    for i, start in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        paths.append(root / f"shard-{i:05d}.npy")
        np.save(paths[-1], x)
    q = centres[rng.integers(0, len(centres), n_queries)] + 0.6 * rng.standard_normal((n_queries, dim), dtype=np.float32)
    np.save(root / "queries.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
    return paths


def measure(root: Path, what: str, k: int, nprobe: int, pq_bytes: int) -> dict:
    """Runs in a child process: one search, its time and this process's peak RSS."""
    import faiss

    from hybrid_ir.vector_search import ShardedVectors, build_ivfpq, exact_search, ivfpq_search, refine

    paths = sorted(root.glob("shard-*.npy"))
    queries = np.load(root / "queries.npy")
    out = {}
    t0 = time.perf_counter()
    if what == "sharded_exact":
        scores, rows = exact_search(queries, ShardedVectors(paths), k, progress=False)
    elif what == "faiss_flat_in_ram":
        index = faiss.IndexFlatIP(queries.shape[1])
        for p in paths:
            index.add(np.load(p))
        scores, rows = index.search(queries, k)
    else:
        vectors = ShardedVectors(paths)
        index = build_ivfpq(vectors, nlist=0, m=pq_bytes, train_size=200_000, seed=13, progress=False)
        out["build_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        scores, rows = ivfpq_search(index, queries, k, nprobe=nprobe)
        out["search_s"] = time.perf_counter() - t1
        out["nlist"] = int(index.nlist)
        t2 = time.perf_counter()
        _, wide = ivfpq_search(index, queries, 4 * k, nprobe=nprobe)
        _, refined = refine(queries, vectors, wide, k)
        out["search_refine4_s"] = time.perf_counter() - t2
        np.save(root / "rows_ivfpq_refine4.npy", refined)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(root / f"rows_{what}.npy", rows)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--shard-size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--pq-bytes", type=int, default=48)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), args.child[1], args.k, args.nprobe, args.pq_bytes)))
        return
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        root = Path(tmp)
        paths = make_corpus(root, args.passages, args.dim, args.shard_size, args.queries)
        corpus_mib = sum(p.stat().st_size for p in paths) / 2**20
        record = {"passages": args.passages, "dim": args.dim, "shard_size": args.shard_size,
                  "queries": args.queries, "k": args.k, "corpus_mib_on_disk": round(corpus_mib, 1)}
        for what in ("sharded_exact", "faiss_flat_in_ram", "ivfpq"):
            child = subprocess.run([sys.executable, __file__, "--child", str(root), what, "--k", str(args.k),
                                    "--nprobe", str(args.nprobe), "--pq-bytes", str(args.pq_bytes)],
                                   capture_output=True, text=True, check=True)
            record[what] = {k: round(v, 2) if isinstance(v, float) else v
                            for k, v in json.loads(child.stdout.strip().splitlines()[-1]).items()}
        exact = np.load(root / "rows_sharded_exact.npy")
        flat = np.load(root / "rows_faiss_flat_in_ram.npy")
        record["top1_agreement_exact_vs_faiss_flat"] = float(np.mean(exact[:, 0] == flat[:, 0]))
        for name in ("ivfpq", "ivfpq_refine4"):
            approx = np.load(root / f"rows_{name}.npy")
            record[f"{name}_recall_of_exact_top_k"] = round(float(np.mean(
                [len(set(a) & set(e)) / len(e) for a, e in zip(approx.tolist(), exact.tolist())])), 4)
        record["peak_rss_exact_over_corpus"] = round(record["sharded_exact"]["peak_rss_mib"] / corpus_mib, 3)
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
