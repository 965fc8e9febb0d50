"""Exact inner-product FAISS indexes of L2-normalised embeddings, with their row-id tables."""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from .io import atomic_path, write_parquet
from .vocab import POOL_TABLES

# Files of one encoded set under data/index/<variant>/<dataset>/
QUERIES, CANDIDATES = POOL_TABLES


def build_index(vectors: np.ndarray) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def has_gpu() -> bool:
    """Whether FAISS can search on a GPU: faiss-gpu installed and a GPU visible."""
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def to_gpu_if_available(index: faiss.Index) -> faiss.Index:
    """Move an index to all GPUs when has_gpu(); else return it unchanged."""
    return faiss.index_cpu_to_all_gpus(index) if has_gpu() else index


def save_encoded(directory: Path, name: str, vectors: np.ndarray, table: pd.DataFrame) -> None:
    """Write <name>.faiss (vectors in table order) and <name>.parquet (the row ids), atomically."""
    if len(vectors) != len(table):
        raise ValueError(f"{name}: {len(vectors)} vectors for {len(table)} rows")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / f"{name}.faiss") as tmp:
        faiss.write_index(build_index(vectors), str(tmp))
    write_parquet(directory / f"{name}.parquet", table.reset_index(drop=True))


def load_encoded(directory: Path, name: str) -> tuple[np.ndarray, pd.DataFrame]:
    index = faiss.read_index(str(Path(directory) / f"{name}.faiss"))
    vectors = index.reconstruct_n(0, index.ntotal)
    table = pd.read_parquet(Path(directory) / f"{name}.parquet")
    if len(vectors) != len(table):
        raise ValueError(f"{directory}/{name}: index has {len(vectors)} rows, table {len(table)}")
    return vectors, table


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, row ids) per query."""
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
