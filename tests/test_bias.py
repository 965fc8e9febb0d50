import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, spearmanr

from hybrid_ir.bias import MEASURES, attach, language_bias, positions, ranking
from hybrid_ir.metrics import evaluate_pool, ranks_of_relevant
from hybrid_ir.statistics import METRICS, metric_replicates
from tests.helpers import random_pool

LANGS = ["ar", "de", "en"]


def _pool(n_qids, seed, decimals=2, skill=0.0, langs=LANGS):
    return random_pool(n_qids, seed, decimals=decimals, skill=skill, langs=langs)


def test_positions_follow_the_tie_rule_of_the_metrics():
    np.testing.assert_array_equal(positions(np.array([[0.5, 0.9, 0.5, 0.1, -0.0, 0.0]])), [[2, 1, 3, 4, 5, 6]])
    scores, _ = _pool(6, seed=0, decimals=1)  # many ties
    pos = positions(scores)
    for i in range(len(scores)):
        ranks = ranks_of_relevant(scores[i:i + 1], [np.arange(scores.shape[1])])[0]
        np.testing.assert_array_equal(np.sort(pos[i]), ranks)
        for c in (0, 3, scores.shape[1] - 1):
            assert pos[i, c] == ranks_of_relevant(scores[i:i + 1], [[c]])[0][0]
    with pytest.raises(ValueError, match="NaN"):
        positions(np.array([[0.1, np.nan]]))


def test_float32_ranking_equals_the_stable_sort():
    rng = np.random.default_rng(2)
    s = np.round(rng.standard_normal((40, 300)), 1).astype(np.float32)  # many ties, both signs
    s[:, :5] = [0.0, -0.0, np.inf, -np.inf, 0.0]
    s[0, 7] = np.float32(-0.0)
    expected = np.argsort(-s.astype(np.float64), axis=1, kind="stable")
    np.testing.assert_array_equal(ranking(s), expected)
    np.testing.assert_array_equal(positions(s), positions(s.astype(np.float64)))
    # and the numbers built on it
    meta = dict(q_lang=["en", "de"] * 20, q_qid=[f"q{i // 2}" for i in range(40)], c_lang=["en", "de", "es"] * 100,
                c_qids=[[f"q{c % 20}"] if c < 60 else [] for c in range(300)])
    a = language_bias(s, **meta).per_query
    b = language_bias(s.astype(np.float64), **meta).per_query
    pd.testing.assert_frame_equal(a, b)


def test_peer_eta2_and_top_share_by_hand():
    # one English query; ranking: d0 (en, relevant), d2 (en), d3 (en), d4 (de), d5 (de), d1 (de, relevant)
    scores = np.array([[0.9, 0.1, 0.8, 0.7, 0.3, 0.2]])
    meta = dict(q_lang=["en"], q_qid=["q"], c_lang=["en", "de", "en", "en", "de", "de"],
                c_qids=[["q"], ["q"], [], [], [], []])
    out = language_bias(scores, **meta, k=3)
    row = out.per_query.iloc[0]
    # relevant: en [1], de [6], single values: H = N - 1 = 1 whatever the ranks
    p_rel = chi2.sf(1, 1)
    # non-relevant: en [2, 3], de [4, 5]: mean 3.5, SS_between 4, SS_total 5, H = 3 * 4 / 5
    p_non = chi2.sf(2.4, 1)
    assert row["peer"] == pytest.approx(0.5 * p_rel + 0.5 * p_non, abs=1e-12)
    assert row["language_eta2"] == pytest.approx(0.8)
    assert row["same_lang_top10"] == pytest.approx(1.0)  # top 3 all English
    assert np.isnan(row["rank_corr"])  # asked in one language only
    assert out.summary["same_lang_top10_blind"] == pytest.approx(0.5)
    # a ranking that interleaves the languages perfectly: no language effect among the non-relevant
    fair = language_bias(np.array([[0.9, 0.1, 0.8, 0.5, 0.7, 0.4]]), **meta, k=3).per_query.iloc[0]
    # non-relevant: en [2, 4], de [3, 5]: means 3 and 4, SS_between 1, SS_total 5
    assert fair["language_eta2"] == pytest.approx(0.2)
    assert fair["same_lang_top10"] == pytest.approx(2 / 3)


def test_peer_matches_the_peer_measure_package():
    ir_measures = pytest.importorskip("ir_measures")
    from peer_measure import PEER

    scores, meta = _pool(12, seed=3, decimals=2)  # ties: the package breaks them by doc id, as we do by column
    nc = scores.shape[1]
    docs = [f"d{c:04d}" for c in range(nc)]
    mapping = dict(zip(docs, meta["c_lang"]))
    qrels, run = [], []
    for i, qid in enumerate(meta["q_qid"]):
        query = f"{qid}-{i}"
        qrels += [ir_measures.Qrel(query, d, int(qid in ids)) for d, ids in zip(docs, meta["c_qids"])]
        run += [ir_measures.ScoredDoc(query, d, float(s)) for d, s in zip(docs, scores[i])]
    measure = PEER(weights={0: 0.5, 1: 0.5}, lang_mapping=mapping) @ nc
    theirs = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qrels, run)}
    ours = language_bias(scores, **meta).per_query
    assert len(ours) == len(meta["q_qid"]) == len(theirs)
    for r in ours.itertuples():
        assert r.peer == pytest.approx(theirs[f"{r.qid}-{r.query_index}"], rel=1e-9, abs=1e-12)
    assert ours["peer"].std() > 0.01  # the check is not between constants


def test_rank_correlation_matches_scipy():
    scores, meta = _pool(15, seed=4, decimals=None)  # no ties: the rankings of the scores
    out = language_bias(scores, **meta).per_query
    qid = np.array(meta["q_qid"])
    per_qid = []
    for q in sorted(set(qid)):
        rows = np.flatnonzero(qid == q)
        if len(rows) < 2:
            assert out.loc[out["qid"] == q, "rank_corr"].isna().all()
            continue
        rho = np.array([[spearmanr(scores[a], scores[b]).statistic for b in rows] for a in rows])
        for j, a in enumerate(rows):
            expected = (rho[j].sum() - 1) / (len(rows) - 1)
            assert out.set_index("query_index").loc[a, "rank_corr"] == pytest.approx(expected, abs=1e-12)
        per_qid.append(rho[np.triu_indices(len(rows), 1)].mean())  # the mean over language pairs
    assert language_bias(scores, **meta).summary["rank_corr"] == pytest.approx(np.mean(per_qid), abs=1e-12)
    # with ties: the correlation of the tie-broken rankings
    tied, meta = _pool(8, seed=5, decimals=1)
    out = language_bias(tied, **meta).per_query.set_index("query_index")
    pos = positions(tied)
    qid = np.array(meta["q_qid"])
    a = next(i for i in range(len(qid)) if (qid == qid[i]).sum() == 2)
    b = next(i for i in np.flatnonzero(qid == qid[a]) if i != a)
    assert out.loc[a, "rank_corr"] == pytest.approx(spearmanr(pos[a], pos[b]).statistic, abs=1e-12)


def test_blocks_do_not_change_the_numbers_and_summary_is_the_macro_average():
    scores, meta = _pool(20, seed=6, decimals=2)
    one = language_bias(scores, **meta, block_size=1)
    big = language_bias(scores, **meta, block_size=10_000)
    pd.testing.assert_frame_equal(one.per_query, big.per_query)
    pq = big.per_query
    for m in ("peer", "language_eta2", "same_lang_top10"):
        assert big.summary[m] == pytest.approx(pq.groupby("query_lang")[m].mean().mean(), abs=1e-12)
    shares = pd.Series(meta["c_lang"]).value_counts(normalize=True)
    assert big.summary["same_lang_top10_blind"] == pytest.approx(shares[LANGS].mean())
    assert set(big.table["query_lang"]) == set(LANGS) and (big.table["setting"] == "multi").all()


def test_attach_and_the_bootstrap_estimate_is_the_summary():
    scores, meta = _pool(25, seed=7, decimals=2, skill=0.3)
    result = evaluate_pool(scores, **meta)
    bias = language_bias(scores, **meta)
    per_query, table = attach(result.per_query_all, result.table, bias)
    assert len(per_query) == len(result.per_query_all) and len(table) == len(result.table)
    multi = per_query["setting"] == "multi"
    assert per_query.loc[~multi, list(MEASURES)].isna().all().all()
    assert per_query.loc[multi, "peer"].notna().all()
    assert table.loc[table["setting"] != "multi", "same_lang_top10"].isna().all()
    assert table.loc[table["setting"] == "multi", "same_lang_top10_blind"].notna().all()
    qids = sorted(set(meta["q_qid"]))
    w = np.random.default_rng(1).integers(0, 3, size=len(qids)).astype(float)
    reps = metric_replicates(per_query, np.vstack([np.ones(len(qids)), w]), qids)
    for m in ("peer", "language_eta2", "rank_corr", "same_lang_top10"):
        assert reps[f"bias.{m}"][0] == pytest.approx(bias.summary[m], abs=1e-12), m
    # a replicate counts a question id as often as it was drawn: rank_corr by hand
    by_qid = bias.per_query.groupby("qid")["rank_corr"].mean().dropna()
    weights = pd.Series(w, index=qids)[by_qid.index]
    assert reps["bias.rank_corr"][1] == pytest.approx((by_qid * weights).sum() / weights.sum(), abs=1e-12)
    # and a macro measure as the macro average of the resampled queries
    rows = bias.per_query.assign(w=bias.per_query["qid"].map(dict(zip(qids, w))))
    cell = rows.groupby("query_lang").apply(lambda g: (g["peer"] * g["w"]).sum() / g["w"].sum(), include_groups=False)
    assert reps["bias.peer"][1] == pytest.approx(cell.dropna().mean(), abs=1e-12)
    assert {f"bias.{m}" for m in MEASURES} <= set(METRICS)
