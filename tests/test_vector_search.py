import faiss
import numpy as np
import pytest

from hybrid_ir import vector_search
from hybrid_ir.vector_search import ShardedVectors, build_ivfpq, exact_search, ivfpq_bytes, ivfpq_search


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _random(n, d, seed):
    return _unit(np.random.default_rng(seed).normal(size=(n, d)))


def _shards(directory, x, size):
    """Write x as .npy shards of `size` rows under directory; return ShardedVectors."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(range(0, len(x), size)):
        paths.append(directory / f"part-{i:05d}.npy")
        np.save(paths[-1], x[a:a + size])
    return ShardedVectors(paths)


def _reference(queries, x, k):
    scores = queries @ x.T
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows


# --- ShardedVectors ---------------------------------------------------------------------------------

def test_sharded_vectors_shapes_offsets_and_memmap(tmp_path):
    x = _random(23, 8, 0)
    vecs = _shards(tmp_path, x, 7)
    assert (len(vecs), vecs.dim, vecs.ntotal) == (4, 8, 23)
    np.testing.assert_array_equal(vecs.offsets, [0, 7, 14, 21, 23])
    assert isinstance(vecs.shard(2), np.memmap)
    np.testing.assert_array_equal(vecs.shard(2), x[14:21])


@pytest.mark.parametrize("bad, needle", [
    (np.zeros((3, 5), np.float32), "dim 5 differs from 4"),
    (np.zeros((3, 4), np.float64), "2-D float32"),
    (np.zeros(4, np.float32), "2-D float32"),
])
def test_sharded_vectors_rejects_bad_shards_naming_the_file(tmp_path, bad, needle):
    np.save(tmp_path / "good.npy", np.zeros((2, 4), np.float32))
    np.save(tmp_path / "bad-shard.npy", bad)
    with pytest.raises(ValueError, match=needle) as err:
        ShardedVectors([tmp_path / "good.npy", tmp_path / "bad-shard.npy"])
    assert "bad-shard.npy" in str(err.value)


def test_sample_is_seeded_sorted_and_independent_of_sharding(tmp_path):
    x = _random(50, 4, 1)
    x[:, 0] = np.arange(50)  # row number readable from the vector
    a = _shards(tmp_path / "a", x, 7)
    b = _shards(tmp_path / "b", x, 50)
    s = a.sample(20, seed=3)
    assert s.dtype == np.float32 and s.shape == (20, 4)
    rows = s[:, 0].astype(int)
    assert len(set(rows)) == 20 and np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(s, x[rows])
    np.testing.assert_array_equal(s, a.sample(20, seed=3))
    np.testing.assert_array_equal(s, b.sample(20, seed=3))
    assert not np.array_equal(s, a.sample(20, seed=4))
    np.testing.assert_array_equal(a.sample(500, seed=0), x)


# --- exact_search -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 10, 300, 305])
def test_exact_search_equals_brute_force(tmp_path, k):
    x, q = _random(300, 32, 2), _random(12, 32, 3)
    scores, rows = exact_search(q, _shards(tmp_path, x, 7), k, progress=False)
    ref_scores, ref_rows = _reference(q, x, k)
    assert scores.shape == rows.shape == (12, min(k, 300))
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(scores, ref_scores)


def test_exact_search_small_blocks_still_match_brute_force(tmp_path, monkeypatch):
    monkeypatch.setattr(vector_search, "ROW_BLOCK", 50)
    x, q = _random(300, 32, 4), _random(30, 32, 5)
    scores, rows = exact_search(q, _shards(tmp_path, x, 7), 15, query_block=8, progress=False)
    ref_scores, ref_rows = _reference(q, x, 15)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)


@pytest.mark.parametrize("row_block", [64, vector_search.ROW_BLOCK])
def test_exact_search_is_bit_identical_across_shard_sizes(tmp_path, monkeypatch, row_block):
    # BLAS gives different low bits for different matrix shapes; fixed global row blocks avoid it
    monkeypatch.setattr(vector_search, "ROW_BLOCK", row_block)
    x, q = _random(500, 48, 6), _random(40, 48, 7)
    results = [exact_search(q, _shards(tmp_path / str(size), x, size), 25, query_block=16, progress=False)
               for size in (1, 7, 500)]
    for scores, rows in results[1:]:
        np.testing.assert_array_equal(scores.view(np.uint32), results[0][0].view(np.uint32))
        np.testing.assert_array_equal(rows, results[0][1])


@pytest.mark.parametrize("row_block", [5, vector_search.ROW_BLOCK])
@pytest.mark.parametrize("size", [1, 7, 30])
def test_exact_search_ties_prefer_the_lower_global_row(tmp_path, monkeypatch, row_block, size):
    # dyadic values: every dot product is exact, so the ties are real
    monkeypatch.setattr(vector_search, "ROW_BLOCK", row_block)
    x = np.tile(np.array([0, 1, 0, 0], np.float32), (30, 1))  # score 0 for q0, 1 for q1
    x[[2, 9, 16, 23]] = 0.5  # same vector in four shards (size 7): score 0.5 for both queries
    x[20] = [1, 0, 0, 0]
    q = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32)
    vecs = _shards(tmp_path, x, size)
    scores, rows = exact_search(q, vecs, 8, progress=False)
    assert rows[0].tolist() == [20, 2, 9, 16, 23, 0, 1, 3]
    assert scores[0].tolist() == [1, 0.5, 0.5, 0.5, 0.5, 0, 0, 0]
    assert rows[1].tolist() == [0, 1, 3, 4, 5, 6, 7, 8]
    _, cut = exact_search(q, vecs, 3, progress=False)
    assert cut.tolist() == [[20, 2, 9], [0, 1, 3]]
    np.testing.assert_array_equal(rows, _reference(q, x, 8)[1])


def test_exact_search_gpu_path_merges_shards_by_the_same_rule(tmp_path, monkeypatch):
    # run the GPU branch on the CPU: "one GPU" whose copy is the CPU index itself
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index: index)
    x, q = _random(200, 16, 8), _random(9, 16, 9)
    scores, rows = exact_search(q, _shards(tmp_path, x, 7), 20, progress=False)
    ref_scores, ref_rows = _reference(q, x, 20)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)


def test_exact_search_rejects_wrong_query_dim(tmp_path):
    with pytest.raises(ValueError, match="dim 8"):
        exact_search(_random(2, 4, 0), _shards(tmp_path, _random(5, 8, 0), 5), 3, progress=False)


# --- IVF-PQ -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """20k x 64 unit vectors around 50 centres, 200 held-out queries, as 7 shards."""
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(50, 64)))
    noise = 0.3 * rng.normal(size=(20200, 8)) @ _unit(rng.normal(size=(8, 64)))  # low intrinsic dim
    x = _unit(centres[rng.integers(0, 50, 20200)] + noise)
    vecs = _shards(tmp_path_factory.mktemp("clustered"), x[:20000], 3000)
    return vecs, x[20000:]


@pytest.fixture(scope="module")
def ivfpq(clustered):
    vecs, _ = clustered
    return build_ivfpq(vecs, nlist=0, m=32, train_size=10000, seed=0, progress=False)


def test_ivfpq_recall_against_exact_search(clustered, ivfpq):
    vecs, q = clustered
    assert ivfpq.nlist == 512 and ivfpq.ntotal == 20000  # auto: min(int(4 * sqrt(20000)), 20000 // 39)
    _, exact = exact_search(q, vecs, 10, progress=False)
    scores, rows = ivfpq_search(ivfpq, q, 10, nprobe=512)
    assert scores.shape == rows.shape == (200, 10) and rows.dtype == np.int64
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), exact.tolist())])
    assert recall >= 0.8
    order = np.lexsort((rows, -scores), axis=1)
    np.testing.assert_array_equal(order, np.broadcast_to(np.arange(10), order.shape))


def test_ivfpq_build_is_deterministic(clustered, ivfpq):
    vecs, q = clustered
    again = build_ivfpq(vecs, nlist=0, m=32, train_size=10000, seed=0, progress=False)
    a, b = ivfpq_search(ivfpq, q, 10, nprobe=16), ivfpq_search(again, q, 10, nprobe=16)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_ivfpq_search_keeps_missing_results_as_minus_one(clustered, ivfpq):
    vecs, q = clustered
    scores, rows = ivfpq_search(ivfpq, q[:5], 400, nprobe=1)  # one list of ~40 vectors per query
    assert rows.shape == (5, 400)
    missing = rows == -1
    assert missing.any() and np.all(np.isneginf(scores[missing])) and np.isfinite(scores[~missing]).all()
    assert np.all(np.diff(missing.astype(int), axis=1) >= 0)  # -1 rows last


def test_ivfpq_gpu_path_uses_nprobe_and_restores_it(clustered, ivfpq, monkeypatch):
    _, q = clustered
    cpu = ivfpq_search(ivfpq, q, 10, nprobe=4)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index: index)
    before = ivfpq.nprobe
    gpu = ivfpq_search(ivfpq, q, 10, nprobe=4)
    np.testing.assert_array_equal(gpu[1], cpu[1])
    assert ivfpq.nprobe == before != 4


def test_build_ivfpq_rejects_bad_settings_naming_the_key(clustered):
    vecs, _ = clustered
    with pytest.raises(ValueError, match=r"miracl\.pq_bytes"):
        build_ivfpq(vecs, nlist=16, m=24, train_size=1000, seed=0, progress=False)
    with pytest.raises(ValueError, match=r"miracl\.ivf_lists"):
        build_ivfpq(vecs, nlist=600, m=8, train_size=500, seed=0, progress=False)


def test_ivfpq_bytes_grows_with_n_and_matches_the_written_file(tmp_path, ivfpq):
    assert ivfpq_bytes(10**7, 384, 48, 4096) > ivfpq_bytes(10**6, 384, 48, 4096) > 0
    faiss.write_index(ivfpq, str(tmp_path / "ivfpq.faiss"))
    written = (tmp_path / "ivfpq.faiss").stat().st_size
    assert abs(ivfpq_bytes(20000, 64, 32, 0) - written) < 0.05 * written


def test_refine_rescores_candidates_exactly_and_reorders(tmp_path):
    from hybrid_ir.vector_search import refine

    rng = np.random.default_rng(5)
    x = rng.standard_normal((60, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    paths = []
    for i, (a, b) in enumerate(((0, 25), (25, 26), (26, 60))):
        paths.append(tmp_path / f"s{i}.npy")
        np.save(paths[-1], x[a:b])
    vectors = ShardedVectors(paths)
    q = x[[3, 40]] + 0.1
    candidates = np.array([[59, 3, 25, -1, 10], [40, -1, 0, 26, 39]])
    scores, rows = refine(q, vectors, candidates, 3)
    for i in range(2):
        valid = [r for r in candidates[i] if r >= 0]
        exact = q[i] @ x[valid].T
        want = [valid[j] for j in np.lexsort((valid, -exact))[:3]]
        assert rows[i].tolist() == want
        np.testing.assert_allclose(scores[i], q[i] @ x[want].T, rtol=1e-6)
    assert rows[0, 0] == 3 and rows[1, 0] == 40
    tiny = refine(q, vectors, candidates, 10)
    assert tiny[1].shape == (2, 5) and tiny[1][0, -1] == -1 and np.isneginf(tiny[0][0, -1])


def test_searchers_named_by_miracl_index_give_their_functions_results(clustered):
    from types import SimpleNamespace

    from hybrid_ir.vector_search import FlatSearcher, IVFPQSearcher, make_searcher, refine

    vectors, queries = clustered[0], clustered[1]
    mp = SimpleNamespace(index="flat", ivf_lists=8, pq_bytes=4, train_size=1000, seed=3, nprobe=4, refine=2)
    flat = make_searcher(vectors, mp)
    assert isinstance(flat, FlatSearcher)
    got, want = flat.search(queries, 10), exact_search(queries, vectors, 10, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    ivf = make_searcher(vectors, SimpleNamespace(**{**vars(mp), "index": "ivfpq"}))
    assert isinstance(ivf, IVFPQSearcher) and "IVF-PQ of 8 lists" in ivf.describe()
    candidates = ivfpq_search(ivf.index, queries, 20, nprobe=4)[1]
    want = refine(queries, vectors, candidates, 10)
    got = ivf.search(queries, 10)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
