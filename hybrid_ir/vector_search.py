"""Top-k inner-product search over L2-normalised float32 embeddings stored as many ``.npy`` shards.

The corpus may be larger than RAM: shards are memory-mapped and read one at a time.

Tie rule: results are ordered by higher score first and, among equal scores, lower global row
first (global row = row number in the concatenation of the shards, in the given order). The rule
also decides which rows make the cut at the k-th place, so ``exact_search`` on the CPU returns
exactly ``np.argsort(-scores, kind="stable")[:, :k]`` of the full score matrix.

Bit-identity across shard sizes: BLAS sgemm gives different low bits for the same (query, row)
pair when the matrix shapes differ, so scores are never computed per shard. The shards are read
as one stream of fixed blocks of global rows ``[b * ROW_BLOCK, (b + 1) * ROW_BLOCK)`` (a block may
span shards), copied into one reused buffer, and each block is multiplied with the same query
block. Every BLAS call thus gets byte-identical inputs whatever the shard split, and so do the
exact selection and merge steps. Results can differ in the last bits when ``query_block`` or
``ROW_BLOCK`` changes.

On a GPU (faiss-gpu with a visible device) ``exact_search`` searches each shard with a flat
index and merges by the same rule, but faiss picks among ties at a shard's cut-off itself, and
its scores may differ in the last bits from the CPU path.
"""
from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from .index import has_gpu, to_gpu_if_available

# Rows per score block: memory is about 3 * query_block * ROW_BLOCK * 4 bytes (scores,
# partition copy, mask). Changing it may change the last bits of scores.
ROW_BLOCK = 16384
# Rows per add_with_ids call when filling an IVF-PQ index.
ADD_BLOCK = 65536


class ShardedVectors:
    """A sequence of .npy shards read one at a time (np.load(mmap_mode="r"))."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ShardedVectors needs at least one shard")
        sizes, dim = [], None
        for path in self.paths:
            shape, dtype = _npy_header(path)
            if len(shape) != 2 or dtype != np.dtype(np.float32):
                raise ValueError(f"{path}: expected a 2-D float32 array, got shape {shape} dtype {dtype}")
            if dim is None:
                dim = shape[1]
            elif shape[1] != dim:
                raise ValueError(f"{path}: dim {shape[1]} differs from {dim} of {self.paths[0]}")
            sizes.append(shape[0])
        self.dim: int = int(dim)
        self.offsets: np.ndarray = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.ntotal: int = int(self.offsets[-1])

    def __len__(self) -> int:
        return len(self.paths)

    def shard(self, i: int) -> np.ndarray:
        return np.load(self.paths[i], mmap_mode="r")

    def sample(self, n: int, seed: int) -> np.ndarray:
        if n < 0:
            raise ValueError(f"sample size {n} < 0")
        rows = np.sort(np.random.default_rng(seed).choice(self.ntotal, size=min(n, self.ntotal), replace=False))
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        bounds = np.searchsorted(rows, self.offsets)  # rows of shard i are rows[bounds[i]:bounds[i+1]]
        for i in range(len(self)):
            lo, hi = bounds[i], bounds[i + 1]
            if hi > lo:
                out[lo:hi] = self.shard(i)[rows[lo:hi] - self.offsets[i]]
        return out


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, without reading the data."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = read(f)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e})") from e
    return shape, dtype


def _row_blocks(vectors: ShardedVectors, block: int, bar: tqdm):
    """Yield (first global row, rows) for fixed blocks of global rows; the array is a reused buffer."""
    buf = np.empty((block, vectors.dim), dtype=np.float32)
    start = fill = 0
    for i in range(len(vectors)):
        x = vectors.shard(i)
        pos = 0
        while pos < len(x):
            take = min(block - fill, len(x) - pos)
            buf[fill:fill + take] = x[pos:pos + take]
            fill, pos = fill + take, pos + take
            if fill == block:
                yield start, buf
                start, fill = start + block, 0
        del x
        bar.update(1)
    if fill:
        yield start, buf[:fill]


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k columns of each row by (-score, column): ([nq, k'], [nq, k'] int64)."""
    nq, ncols = scores.shape
    if ncols <= k:
        cols = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(scores, cols, axis=1), cols.astype(np.int64)
    # k-th largest value per row; keep every column >= it so ties at the cut-off all compete
    t = np.partition(scores, ncols - k, axis=1)[:, ncols - k, None]
    qi, col = np.nonzero(scores >= t)
    val = scores[qi, col]
    order = np.lexsort((col, -val, qi))
    qi, col, val = qi[order], col[order], val[order]
    counts = np.bincount(qi, minlength=nq)
    rank = np.arange(len(qi)) - (np.cumsum(counts) - counts)[qi]
    keep = rank < k
    if keep.sum() != nq * k:  # NaN scores compare False
        raise ValueError("non-finite scores: queries or vectors contain NaN")
    return val[keep].reshape(nq, k), col[keep].astype(np.int64).reshape(nq, k)


def _merge(s1, r1, s2, r2, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted candidate lists per query by (-score, row), keeping k."""
    s, r = np.concatenate([s1, s2], axis=1), np.concatenate([r1, r2], axis=1)
    order = np.lexsort((r, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(r, order, axis=1)


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"queries of shape {q.shape} do not match dim {dim}")
    return q


def exact_search(queries: np.ndarray, vectors: ShardedVectors, k: int, *, query_block: int = 1024,
                 progress: bool = True, desc: str = "search") -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: (scores float32 [nq, k'], global rows int64 [nq, k']), k' = min(k, ntotal).
    Order: higher score first; among equal scores the lower global row first. The result must be
    bit-identical whatever the shard sizes (tests check shard sizes 1, 7 and all-in-one)."""
    if k < 1 or query_block < 1:
        raise ValueError(f"k={k} and query_block={query_block} must be >= 1")
    q = _as_queries(queries, vectors.dim)
    kk = min(k, vectors.ntotal)
    best_s = np.empty((len(q), 0), dtype=np.float32)
    best_r = np.empty((len(q), 0), dtype=np.int64)
    if len(q) == 0:
        return best_s, best_r
    with tqdm(total=len(vectors), desc=desc, unit="shard", disable=not progress) as bar:
        if has_gpu():
            for i in range(len(vectors)):
                x = np.ascontiguousarray(vectors.shard(i), dtype=np.float32)
                if len(x):
                    flat = faiss.IndexFlatIP(vectors.dim)
                    flat.add(x)
                    s, r = to_gpu_if_available(flat).search(q, min(kk, len(x)))
                    best_s, best_r = _merge(best_s, best_r, s, r.astype(np.int64) + vectors.offsets[i], kk)
                bar.update(1)
            return best_s, best_r
        blocks = [slice(a, a + query_block) for a in range(0, len(q), query_block)]
        for start, x in _row_blocks(vectors, ROW_BLOCK, bar):
            new_s, new_r = [], []
            for b in blocks:
                s, c = _top_k(q[b] @ x.T, kk)
                s, r = _merge(best_s[b], best_r[b], s, c + start, kk)
                new_s.append(s)
                new_r.append(r)
            best_s, best_r = np.concatenate(new_s), np.concatenate(new_r)
    return best_s, best_r


def _auto_nlist(ntotal: int) -> int:
    return max(1, min(int(4 * math.sqrt(ntotal)), ntotal // 39 or 1))


def build_ivfpq(vectors: ShardedVectors, *, nlist: int, m: int, nbits: int = 8, train_size: int, seed: int,
                progress: bool = True) -> "faiss.Index":
    """IndexIVFPQ (inner product) trained on vectors.sample(train_size, seed), then filled shard by shard with
    add_with_ids(global rows). Only the PQ codes (m bytes per vector) and ids stay in RAM.
    nlist == 0: auto = clamp(int(4 * sqrt(ntotal)), 1, ntotal // 39 or 1). Raise ValueError naming `miracl.pq_bytes`
    when dim % m != 0, and naming `miracl.ivf_lists` when nlist > number of training vectors.
    Training is deterministic for a seed (k-means seeds of the coarse quantizer and of the PQ)."""
    dim = vectors.dim
    if dim % m:
        raise ValueError(f"miracl.pq_bytes={m} must divide the embedding dim {dim}")
    nlist = nlist or _auto_nlist(vectors.ntotal)
    n_train = min(train_size, vectors.ntotal)
    if nlist > n_train:
        raise ValueError(f"miracl.ivf_lists={nlist} exceeds the {n_train} training vectors")
    if n_train < 2 ** nbits:
        raise ValueError(f"{n_train} training vectors are fewer than the 2**{nbits} PQ centroids")
    train = vectors.sample(train_size, seed)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed  # coarse k-means (IndexIVF.cp is ClusteringParameters)
    index.pq.cp.seed = seed  # PQ k-means
    index.train(train)
    del train
    for i in tqdm(range(len(vectors)), desc="ivfpq add", unit="shard", disable=not progress):
        x = vectors.shard(i)
        for a in range(0, len(x), ADD_BLOCK):
            b = min(a + ADD_BLOCK, len(x))
            ids = np.arange(vectors.offsets[i] + a, vectors.offsets[i] + b, dtype=np.int64)
            index.add_with_ids(np.ascontiguousarray(x[a:b], dtype=np.float32), ids)
        del x
    return index


def ivfpq_search(index, queries: np.ndarray, k: int, *, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) like exact_search: rows are the added ids, shapes [nq, k'] with k' = min(k, ntotal);
    missing results are row -1 with score -inf, last. Rows are re-ordered by the tie rule, but faiss
    chooses which of several equal scores make the cut-off. Uses the GPU via to_gpu_if_available when present."""
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    q = _as_queries(queries, index.d)
    kk = min(k, index.ntotal)
    if kk == 0:
        return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
    if has_gpu():
        old = index.nprobe
        index.nprobe = nprobe  # copied to the GPU index
        try:
            s, r = to_gpu_if_available(index).search(q, kk)
        finally:
            index.nprobe = old
    else:
        s, r = index.search(q, kk, params=faiss.SearchParametersIVF(nprobe=nprobe))
    r = r.astype(np.int64)
    s = np.where(r < 0, np.float32(-np.inf), s).astype(np.float32)
    order = np.lexsort((r, -s), axis=1)
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(r, order, axis=1)


def ivfpq_bytes(n: int, dim: int, m: int, nlist: int) -> int:
    """Estimated size of the index in RAM (or written): codes + 8-byte ids per vector + centroids + PQ codebooks.
    Assumes 8-bit PQ codes (m bytes per vector); nlist == 0 means the automatic nlist for n."""
    nlist = nlist or _auto_nlist(n)
    return n * (m + 8) + 4 * nlist * dim + 4 * 256 * dim


def refine(queries: np.ndarray, vectors: ShardedVectors, rows: np.ndarray, k: int,
           pair_block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner products of each query's candidate rows (e.g. IVF-PQ's; -1 = none), read from the shards,
    ordered by the tie rule and cut to k: (scores [nq, k'], rows [nq, k']). Only the candidates are read.
    Scores are float32 dot products (einsum), equal to exact_search's up to the last bits."""
    q = _as_queries(queries, vectors.dim)
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.full(rows.shape, -np.inf, dtype=np.float32)
    valid = rows >= 0
    shard_of = np.searchsorted(vectors.offsets, rows, side="right") - 1
    for i in np.unique(shard_of[valid]):
        qi, ci = np.nonzero(valid & (shard_of == i))
        for a in range(0, len(qi), pair_block):
            bq, bc = qi[a:a + pair_block], ci[a:a + pair_block]
            local, inverse = np.unique(rows[bq, bc] - vectors.offsets[i], return_inverse=True)
            x = np.asarray(vectors.shard(i)[local], dtype=np.float32)  # sorted rows: forward reads
            scores[bq, bc] = np.einsum("nd,nd->n", q[bq], x[inverse])
    order = np.lexsort((rows, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


class FlatSearcher:
    """Exact top-k over the shards (exact_search): memory independent of the corpus size."""

    def __init__(self, vectors: ShardedVectors):
        self.vectors = vectors

    def describe(self) -> str:
        return f"exact search over {self.vectors.ntotal} passages"

    def search(self, queries: np.ndarray, k: int, desc: str = "search") -> tuple[np.ndarray, np.ndarray]:
        return exact_search(queries, self.vectors, k, desc=desc)


class IVFPQSearcher:
    """IVF-PQ codes in RAM (build_ivfpq), searched with `nprobe` lists; `refine` > 0 re-scores the top
    k x refine candidates exactly from the shards (refine)."""

    def __init__(self, vectors: ShardedVectors, *, nlist: int, m: int, train_size: int, seed: int, nprobe: int,
                 refine: int):
        self.vectors, self.m, self.nprobe, self.refine = vectors, m, nprobe, refine
        self.index = build_ivfpq(vectors, nlist=nlist, m=m, train_size=train_size, seed=seed)

    def describe(self) -> str:
        size = ivfpq_bytes(self.vectors.ntotal, self.vectors.dim, self.m, self.index.nlist)
        return f"IVF-PQ of {self.index.nlist} lists, about {size / 2**20:.0f} MiB in RAM"

    def search(self, queries: np.ndarray, k: int, desc: str = "search") -> tuple[np.ndarray, np.ndarray]:
        scores, rows = ivfpq_search(self.index, queries, k * max(1, self.refine), nprobe=self.nprobe)
        return refine(queries, self.vectors, rows, k) if self.refine else (scores, rows)


def make_searcher(vectors: ShardedVectors, miracl_params) -> FlatSearcher | IVFPQSearcher:
    """The searcher `miracl.index` names, with its params (params.MiraclParams)."""
    if miracl_params.index == "flat":
        return FlatSearcher(vectors)
    return IVFPQSearcher(vectors, nlist=miracl_params.ivf_lists, m=miracl_params.pq_bytes,
                         train_size=miracl_params.train_size, seed=miracl_params.seed, nprobe=miracl_params.nprobe,
                         refine=miracl_params.refine)
