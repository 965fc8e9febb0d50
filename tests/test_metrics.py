import math

import numpy as np
import pytest
import pytrec_eval

from hybrid_ir.metrics import evaluate_pool, ranks_of_relevant

# Per-query definitions written plainly (method.md): the oracles evaluate_pool's vectorised metrics are
# checked against.


def average_precision(ranks: np.ndarray) -> float:
    """LAReQA AP: (1/m) sum_i i / r_i over sorted ranks; NaN if no relevant."""
    r = np.sort(np.asarray(ranks, dtype=np.float64))
    if r.size == 0:
        return float("nan")
    return float(np.mean(np.arange(1, r.size + 1) / r))


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of relevant candidates ranked within the top k; NaN if no relevant."""
    r = np.asarray(ranks)
    if r.size == 0:
        return float("nan")
    return float(np.count_nonzero(r <= k) / r.size)


def rank_distance(ranks: np.ndarray) -> float:
    """Max rank - min rank of the relevant candidates; NaN if no relevant."""
    r = np.asarray(ranks)
    if r.size == 0:
        return float("nan")
    return float(r.max() - r.min())


def test_single_query_hand_case():
    s = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    (r,) = ranks_of_relevant(s, [np.array([3, 1])])
    assert r.tolist() == [2, 4]
    assert average_precision(r) == pytest.approx(0.5)  # (1/2)(1/2 + 2/4)
    assert rank_distance(r) == 2
    assert recall_at_k(r, 1) == 0.0
    assert recall_at_k(r, 2) == 0.5
    assert recall_at_k(r, 10) == 1.0


def test_empty_relevant():
    s = np.array([[0.1, 0.2]], dtype=np.float32)
    (r,) = ranks_of_relevant(s, [np.array([], dtype=int)])
    assert r.size == 0
    assert math.isnan(average_precision(r))
    assert math.isnan(recall_at_k(r, 1))
    assert math.isnan(rank_distance(r))


def test_ties_by_column_index():
    s = np.array(
        [
            [0.5, 0.7, 0.5, 0.7, 0.5],  # order: 1, 3, 0, 2, 4
            [0.3, 0.3, 0.3, 0.3, 0.3],  # all tied: rank = index + 1
            [-0.0, 0.0, 1.0, -1.0, 0.0],  # -0.0 == 0.0: order 2, 0, 1, 4, 3
        ],
        dtype=np.float32,
    )
    rel = [np.array([0, 2, 3, 4]), np.array([4, 1]), np.array([0, 1, 3, 4])]
    r = ranks_of_relevant(s, rel)
    assert r[0].tolist() == [2, 3, 4, 5]
    assert r[1].tolist() == [2, 5]
    assert r[2].tolist() == [2, 3, 4, 5]
    # single relevant in the middle of a tie group
    (r,) = ranks_of_relevant(s[:1], [np.array([2])])
    assert r.tolist() == [4]


def test_nan_rejected():
    s = np.array([[0.1, np.nan]], dtype=np.float32)
    with pytest.raises(ValueError):
        ranks_of_relevant(s, [np.array([0])])


def _stable_ranks(row, rel):
    order = np.argsort(-row.astype(np.float64), kind="stable")
    pos = np.empty(row.size, dtype=np.int64)
    pos[order] = np.arange(1, row.size + 1)
    return np.sort(pos[rel])


def test_ties_match_stable_sort_and_blocking():
    rng = np.random.default_rng(1)
    s = np.round(rng.random((40, 60)), 1).astype(np.float32)  # many ties
    rel = [rng.choice(60, rng.integers(0, 6), replace=False) for _ in range(40)]
    full = ranks_of_relevant(s, rel)
    small = ranks_of_relevant(s, rel, block_size=3)
    f64 = ranks_of_relevant(s.astype(np.float64), rel, block_size=7)
    for i in range(40):
        ref = _stable_ranks(s[i], rel[i])
        assert full[i].tolist() == ref.tolist()
        assert small[i].tolist() == ref.tolist()
        assert f64[i].tolist() == ref.tolist()


def test_against_pytrec_eval():
    rng = np.random.default_rng(7)
    nq, nc = 30, 150
    s = rng.random((nq, nc))  # float64, tie-free (checked)
    assert all(np.unique(row).size == nc for row in s)
    rel = [rng.choice(nc, rng.integers(1, 5), replace=False) for _ in range(nq)]
    doc = [f"d{j:04d}" for j in range(nc)]
    qrel = {f"q{i}": {doc[j]: 1 for j in rel[i]} for i in range(nq)}
    run = {f"q{i}": {doc[j]: float(s[i, j]) for j in range(nc)} for i in range(nq)}
    res = pytrec_eval.RelevanceEvaluator(qrel, {"map", "recall_10"}).evaluate(run)
    ranks = ranks_of_relevant(s, rel)
    for i in range(nq):
        assert average_precision(ranks[i]) == pytest.approx(res[f"q{i}"]["map"], abs=1e-9)
        assert recall_at_k(ranks[i], 10) == pytest.approx(res[f"q{i}"]["recall_10"], abs=1e-9)

    # the same through evaluate_pool (one language: multi == full ranking)
    out = evaluate_pool(
        s,
        ["en"] * nq,
        [f"q{i}" for i in range(nq)],
        ["en"] * nc,
        [[f"q{i}" for i in range(nq) if j in set(rel[i].tolist())] for j in range(nc)],
    )
    pq = out.per_query
    assert pq["qid"].tolist() == [f"q{i}" for i in range(nq)]
    ref_ap = [res[f"q{i}"]["map"] for i in range(nq)]
    ref_r10 = [res[f"q{i}"]["recall_10"] for i in range(nq)]
    np.testing.assert_allclose(pq["ap"], ref_ap, atol=1e-9, rtol=0)
    np.testing.assert_allclose(pq["recall"], ref_r10, atol=1e-9, rtol=0)
    assert out.summary["map"]["multi"] == pytest.approx(np.mean(ref_ap), abs=1e-12)
    assert out.summary["map"]["mono"] == pytest.approx(np.mean(ref_ap), abs=1e-12)


# Hand-built 2-language pool.
# Queries: 0 en q1, 1 en q2, 2 en q3 (no de answer), 3 de q1, 4 de q2.
# Candidates: c0 en q1, c1 en q2, c2 en q3, c3 de q1, c4 de q2, c5 de (none).
HAND_SCORES = np.array(
    [
        [0.9, 0.5, 0.1, 0.7, 0.3, 0.8],
        [0.6, 0.4, 0.2, 0.1, 0.9, 0.3],
        [0.1, 0.8, 0.7, 0.2, 0.3, 0.9],
        [0.2, 0.1, 0.4, 0.5, 0.8, 0.05],
        [0.3, 0.9, 0.1, 0.2, 0.7, 0.6],
    ],
    dtype=np.float32,
)
HAND = dict(
    q_lang=["en", "en", "en", "de", "de"],
    q_qid=["q1", "q2", "q3", "q1", "q2"],
    c_lang=["en", "en", "en", "de", "de", "de"],
    c_qids=[["q1"], ["q2"], ["q3"], ["q1"], ["q2"], []],
)


def test_hand_pool():
    out = evaluate_pool(HAND_SCORES, **HAND)
    sm = out.summary
    # mono en: ranks 1, 2, 2 -> AP 1, .5, .5 = 2/3; R@1 1/3
    # mono de: ranks 2, 1 -> .75; R@1 .5
    assert sm["map"]["mono"] == pytest.approx((2 / 3 + 3 / 4) / 2, abs=1e-12)
    assert sm["recall"]["mono_r1"] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-12)
    # cross en->de: ranks 2, 1 (q3 skipped) -> .75; de->en: ranks 2, 1 -> .75
    assert sm["map"]["cross"] == pytest.approx(0.75, abs=1e-12)
    assert sm["recall"]["cross_r1"] == pytest.approx(0.5, abs=1e-12)
    # multi: en ranks [1,3],[1,3],[3] -> AP 5/6, 5/6, 1/3 (mean 2/3), RD 2, 2, 0
    #        de ranks [2,4],[1,2] -> AP .5, 1 (mean .75), RD 2, 1
    assert sm["map"]["multi"] == pytest.approx((2 / 3 + 3 / 4) / 2, abs=1e-12)
    assert sm["map"]["multi_micro"] == pytest.approx(0.7, abs=1e-12)
    assert sm["map"]["multi"] != pytest.approx(sm["map"]["multi_micro"])
    assert sm["rank_distance"] == pytest.approx((4 / 3 + 3 / 2) / 2, abs=1e-12)
    assert sm["recall"]["multi_r10"] == 1.0
    assert sm["n_queries"] == {"mono": 5, "cross": 4, "multi": 5}
    assert set(sm) == {"map", "recall", "rank_distance", "n_queries"}
    assert set(sm["map"]) == {"mono", "cross", "multi", "multi_micro"}
    assert set(sm["recall"]) == {"mono_r1", "cross_r1", "multi_r10"}
    assert isinstance(sm["map"]["mono"], float) and isinstance(sm["n_queries"]["mono"], int)

    t = out.table
    assert list(t.columns) == ["setting", "query_lang", "passage_lang", "n_queries",
                               "n_skipped", "map", "recall", "rank_distance"]
    assert list(zip(t.setting, t.query_lang, t.passage_lang)) == [
        ("mono", "de", "de"), ("mono", "en", "en"),
        ("cross", "de", "en"), ("cross", "en", "de"),
        ("multi", "de", "all"), ("multi", "en", "all"),
    ]
    assert t.n_queries.tolist() == [2, 3, 2, 2, 2, 3]
    assert t.n_skipped.tolist() == [0, 0, 0, 1, 0, 0]
    np.testing.assert_allclose(t["map"], [0.75, 2 / 3, 0.75, 0.75, 0.75, 2 / 3], atol=1e-12)
    assert t.rank_distance[:4].isna().all()
    np.testing.assert_allclose(t.rank_distance[4:], [1.5, 4 / 3], atol=1e-12)

    pq = out.per_query
    assert pq.qid.tolist() == ["q1", "q2", "q3", "q1", "q2"]
    assert pq.query_lang.tolist() == ["en", "en", "en", "de", "de"]
    np.testing.assert_allclose(pq.ap, [5 / 6, 5 / 6, 1 / 3, 0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(pq.rank_distance, [2, 2, 0, 2, 1])


def test_hand_pool_custom_k():
    out = evaluate_pool(HAND_SCORES, **HAND, mono_k=2, cross_k=3, multi_k=2)
    rc = out.summary["recall"]
    assert set(rc) == {"mono_r2", "cross_r3", "multi_r2"}
    # mono: en ranks 1,2,2 / de 2,1 -> all within 2
    assert rc["mono_r2"] == 1.0
    assert rc["cross_r3"] == 1.0
    # multi R@2: en .5, .5, 0 (1/3); de .5, 1 (.75)
    assert rc["multi_r2"] == pytest.approx((1 / 3 + 3 / 4) / 2, abs=1e-12)


def test_bad_relevant_rejected():
    s = np.zeros((1, 4), dtype=np.float32)
    for bad in ([4], [-1], [2, -1], [1, 1]):
        with pytest.raises(ValueError):
            ranks_of_relevant(s, [np.array(bad)])


def test_shared_answers_and_missing_language():
    # fr has queries but no candidates: its mono/cross cells are all skipped and
    # excluded from the macro-averages. c1 answers both qa and qb.
    s = np.array(
        [
            [0.9, 0.8, 0.1],  # en qa: relevant c0 (rank 1), c1 (rank 2)
            [0.2, 0.3, 0.5],  # en qb: relevant c1 (rank 2)
            [0.1, 0.2, 0.3],  # fr qa: multi ranks c0 3, c1 2
        ],
        dtype=np.float32,
    )
    out = evaluate_pool(
        s, ["en", "en", "fr"], ["qa", "qb", "qa"], ["en"] * 3, [["qa"], ["qa", "qb"], []]
    )
    t = out.table.set_index(["setting", "query_lang", "passage_lang"])
    assert t.loc[("mono", "fr", "fr"), "n_queries"] == 0
    assert t.loc[("mono", "fr", "fr"), "n_skipped"] == 1
    assert math.isnan(t.loc[("mono", "fr", "fr"), "map"])
    assert t.loc[("cross", "fr", "en"), "map"] == pytest.approx(0.5 * (1 / 2 + 2 / 3))
    assert list(t.index.get_level_values(0)).count("cross") == 1  # no en->fr pool
    # mono en: AP(qa) = 1, AP(qb) = 1/2
    assert out.summary["map"]["mono"] == pytest.approx(0.75)
    assert out.summary["map"]["cross"] == pytest.approx(0.5 * (1 / 2 + 2 / 3))
    assert out.summary["map"]["multi"] == pytest.approx((0.75 + 7 / 12) / 2)
    assert out.summary["map"]["multi_micro"] == pytest.approx((1 + 0.5 + 7 / 12) / 3)
    # RD: en 1 and 0 -> 0.5; fr 1
    assert out.summary["rank_distance"] == pytest.approx(0.75)
    assert out.per_query.query_index.tolist() == [0, 1, 2]
    assert out.summary["n_queries"] == {"mono": 2, "cross": 1, "multi": 3}


def _brute_pool(s, q_lang, q_qid, c_lang, c_qids, ks):
    """Direct protocol with stable argsort ranks, loops everywhere."""
    langs_q, langs_c = sorted(set(q_lang)), sorted(set(c_lang))

    def cell(qs, cs, k):
        vals = []
        for q in qs:
            rel = [j for j, c in enumerate(cs) if q_qid[q] in c_qids[c]]
            if rel:
                r = _stable_ranks(s[q, cs], np.array(rel))
                vals.append((average_precision(r), recall_at_k(r, k), rank_distance(r)))
        return vals

    def qrows(x):
        return [i for i in range(len(q_lang)) if q_lang[i] == x]

    def ccols(y):
        return [j for j in range(len(c_lang)) if c_lang[j] == y]

    mono = [cell(qrows(x), ccols(x), ks[0]) for x in langs_q]
    cross = [cell(qrows(x), ccols(y), ks[1]) for x in langs_q for y in langs_c if y != x]
    multi = [cell(qrows(x), list(range(len(c_lang))), ks[2]) for x in langs_q]

    def macro(cells, i):
        return np.mean([np.mean([v[i] for v in c]) for c in cells if c])

    return {
        "map": {"mono": macro(mono, 0), "cross": macro(cross, 0), "multi": macro(multi, 0),
                "multi_micro": np.mean([v[0] for c in multi for v in c])},
        "recall": [macro(mono, 1), macro(cross, 1), macro(multi, 1)],
        "rank_distance": macro(multi, 2),
    }


def test_pool_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    langs = ["ar", "de", "en"]
    # qids exist in 1-3 languages; unequal query counts per language
    q_lang, q_qid, c_lang, c_qids = [], [], [], []
    for qi in range(25):
        for L in rng.choice(langs, rng.integers(1, 4), replace=False):
            q_lang.append(str(L))
            q_qid.append(f"q{qi}")
            c_lang.append(str(L))
            c_qids.append([f"q{qi}"] + ([f"q{qi + 1}"] if rng.random() < 0.2 else []))
    for _ in range(15):  # distractors
        c_lang.append(str(rng.choice(langs)))
        c_qids.append([])
    s = np.round(rng.random((len(q_lang), len(c_lang))), 1).astype(np.float32)
    out = evaluate_pool(s, q_lang, q_qid, c_lang, c_qids, mono_k=2, cross_k=1, multi_k=5,
                        block_size=4)
    ref = _brute_pool(s, q_lang, q_qid, c_lang, c_qids, (2, 1, 5))
    for key, v in ref["map"].items():
        assert out.summary["map"][key] == pytest.approx(v, abs=1e-12)
    assert list(out.summary["recall"].values()) == pytest.approx(ref["recall"], abs=1e-12)
    assert out.summary["rank_distance"] == pytest.approx(ref["rank_distance"], abs=1e-12)


def test_per_query_all_covers_every_setting_and_matches_the_table():
    out = evaluate_pool(HAND_SCORES, **HAND)
    pq = out.per_query_all
    assert list(pq.columns) == ["setting", "query_lang", "passage_lang", "query_index", "qid", "ap", "recall",
                                "rank_distance"]
    cells = pq.groupby(["setting", "query_lang", "passage_lang"], sort=False).agg(
        n=("ap", "size"), map=("ap", "mean"), recall=("recall", "mean"))
    t = out.table[out.table["n_queries"] > 0].set_index(["setting", "query_lang", "passage_lang"])
    assert list(cells.index) == list(t.index)  # same cells, same order
    np.testing.assert_array_equal(cells["n"], t["n_queries"])
    np.testing.assert_allclose(cells["map"], t["map"], atol=1e-15)
    np.testing.assert_allclose(cells["recall"], t["recall"], atol=1e-15)
    # cross en->de skips q3 (no de answer); rank distance only in multi
    assert pq[(pq.setting == "cross") & (pq.query_lang == "en")].qid.tolist() == ["q1", "q2"]
    assert pq[pq.setting != "multi"].rank_distance.isna().all()
    multi = pq[pq.setting == "multi"].sort_values("query_index")
    np.testing.assert_array_equal(multi["ap"], out.per_query["ap"])
    np.testing.assert_array_equal(multi["rank_distance"], out.per_query["rank_distance"])
    assert (out.per_query["setting"] == "multi").all() and (out.per_query["passage_lang"] == "all").all()
