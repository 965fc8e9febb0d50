import numpy as np
import pandas as pd
import pytest

from hybrid_ir.index import build_index, load_encoded, save_encoded, search


def _unit(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_roundtrip_keeps_vectors_and_ids_in_order(tmp_path):
    vecs = _unit(50, 8, 0)
    table = pd.DataFrame({"cid": [f"c{i}" for i in range(50)], "qids": [[f"q{i}"] for i in range(50)]})
    save_encoded(tmp_path / "idx", "candidates", vecs, table)
    back, ids = load_encoded(tmp_path / "idx", "candidates")
    np.testing.assert_array_equal(back, vecs)
    assert ids["cid"].tolist() == table["cid"].tolist() and list(ids["qids"][3]) == ["q3"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["candidates.faiss", "candidates.parquet"]


def test_search_is_exact_inner_product():
    vecs, queries = _unit(100, 16, 1), _unit(5, 16, 2)
    scores, ids = search(build_index(vecs), queries, k=10)
    brute = queries @ vecs.T
    np.testing.assert_array_equal(ids[:, 0], brute.argmax(axis=1))
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :10], rtol=1e-5)


def test_length_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="3 vectors for 2 rows"):
        save_encoded(tmp_path, "queries", _unit(3, 4, 0), pd.DataFrame({"qid": ["a", "b"]}))


def test_disk_space_guard_refuses_with_the_estimate(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from hybrid_ir.io import DiskSpaceError, ensure_free_space

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 0, 100 * 2**20))
    ensure_free_space(tmp_path / "new" / "dir", 50 * 2**20, "encode base")  # 60 MiB with margin: fits
    with pytest.raises(DiskSpaceError, match=r"encode miracl: needs about 200 MiB .* only 100 MiB free"):
        ensure_free_space(tmp_path / "new", 200 * 2**20, "encode miracl")
    assert not (tmp_path / "new").exists()


def test_atomic_write_sweeps_leftovers_of_a_killed_run(tmp_path):
    from hybrid_ir.io import atomic_path, write_json

    stale = tmp_path / ".model.k1ll3d.tmp" / "model"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"x")
    with atomic_path(tmp_path / "model", is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "whole.bin").write_bytes(b"y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    write_json(tmp_path / "out.json", {"a": 1})
    assert (tmp_path / "out.json").read_text() == '{\n  "a": 1\n}\n'
