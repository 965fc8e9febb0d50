import numpy as np
import pandas as pd
import pytest

from hybrid_ir.evalsets import load_pool
from hybrid_ir.metrics import evaluate_pool
from hybrid_ir.resampling import _seed_stream, article_clusters, coverage_sentence, frames, record, resample
from hybrid_ir.statistics import METRICS, _interval, bootstrap, resample_counts
from tests.helpers import SHARED_CORPORA
from tests.test_statistics import _pool

LANGS = ["ar", "de", "en"]


def _per_query(scores, meta, skill=0.0):
    relevant = np.array([[q in c for c in meta["c_qids"]] for q in meta["q_qid"]])
    return evaluate_pool(scores + skill * relevant, **meta).per_query_all


def _direct(table: pd.DataFrame, times: dict) -> dict:
    """The headline metrics of a per-query table whose rows are repeated times[qid] times, by groupby."""
    rows = table.loc[table.index.repeat(table["qid"].map(times))]
    cell = lambda s, col: rows[rows["setting"] == s].dropna(subset=[col]).groupby(["query_lang", "passage_lang"])[col]
    return {"map.mono": cell("mono", "ap").mean().mean(), "map.cross": cell("cross", "ap").mean().mean(),
            "map.multi": cell("multi", "ap").mean().mean(),
            "map.multi_micro": rows[rows["setting"] == "multi"]["ap"].mean(),
            "recall.cross_r1": cell("cross", "recall").mean().mean(),
            "rank_distance": cell("multi", "rank_distance").mean().mean()}


def test_one_seed_by_question_id_is_the_question_bootstrap_bit_for_bit():
    scores, meta = _pool(40, seed=3)
    tables = {"mono": _per_query(scores, meta), "hybrid": _per_query(scores, meta, 0.2)}
    ints, pairs = bootstrap(tables, n_boot=300, seed=5)
    r = resample({v: {13: t} for v, t in tables.items()}, None, n_boot=300, seed=5)
    mine = r.intervals()
    for col in ("variant", "metric", "estimate", "lo", "hi", "n_questions", "n_boot"):
        pd.testing.assert_series_equal(mine[col], ints[col], check_exact=True)
    pd.testing.assert_frame_equal(r.pairs(), pairs, check_exact=True)
    assert mine["seed_sd"].isna().all() and (mine["n_seeds"] == 1).all() and (mine["cluster"] == "question id").all()
    assert not r.covers_training_seeds


def test_a_replicate_is_the_mean_over_drawn_seeds_of_the_metric_on_drawn_articles():
    # 2 variants x 3 seeds (each seed a differently scored pool), questions in 6 articles
    tables = {}
    for v, skill in (("cross", 0.0), ("hybrid", 0.15)):
        tables[v] = {}
        for s in (13, 14, 15):
            scores, meta = _pool(30, seed=s)  # same questions, other scores per seed
            noise = np.random.default_rng(100 * s + int(skill * 100)).normal(0, 0.05, scores.shape)
            tables[v][s] = _per_query(scores + noise, meta, skill)
    qids = sorted(set(tables["cross"][13]["qid"]))
    article = {q: f"a{int(q[1:]) % 6}" for q in qids}
    r = resample(tables, article, n_boot=40, seed=7)
    assert r.n_clusters == 6 and r.n_questions == len(qids) and r.covers_training_seeds
    # the draws, rebuilt from their documented generators: articles sorted by label, seeds in input order
    art_counts = resample_counts(6, 40, 7)
    for b in (0, 1, 17, 39):
        times = {q: int(art_counts[b, int(article[q][1:])]) for q in qids}
        for v in tables:
            seed_counts = resample_counts(3, 40, _seed_stream(7, v))[b]
            direct = {m: 0.0 for m in _direct(tables[v][13], times)}
            for s, c in zip(tables[v], seed_counts):
                for m, value in _direct(tables[v][s], times).items():
                    direct[m] += c * value / 3
            for m, value in direct.items():
                assert r.values[v][m][b + 1] == pytest.approx(value, abs=1e-12), (v, m, b)
    # the estimate: the mean over seeds of each seed's metric on every question
    ones = {q: 1 for q in qids}
    for v in tables:
        per_seed = [_direct(t, ones)["map.multi"] for t in tables[v].values()]
        assert r.values[v]["map.multi"][0] == pytest.approx(np.mean(per_seed), abs=1e-12)
        assert r.per_seed[v]["map.multi"] == pytest.approx(per_seed, abs=1e-12)
    ints = r.intervals().set_index(["variant", "metric"])
    assert ints.loc[("hybrid", "map.multi"), "seed_sd"] == pytest.approx(np.std(r.per_seed["hybrid"]["map.multi"],
                                                                               ddof=1))
    # a paired difference is the difference within each replicate (same article draw for both variants)
    pairs = r.pairs().set_index(["a", "b", "metric"])
    d = r.values["hybrid"]["map.multi"] - r.values["cross"]["map.multi"]
    assert pairs.loc[("hybrid", "cross", "map.multi"), "diff"] == d[0]
    assert (pairs.loc[("hybrid", "cross", "map.multi"), "lo"], pairs.loc[("hybrid", "cross", "map.multi"), "hi"]) \
        == _interval(d[1:])


def test_seed_level_widens_the_interval_and_identical_seeds_do_not():
    scores, meta = _pool(50, seed=8)
    base = _per_query(scores, meta)
    article = {q: int(q[1:]) // 5 for q in set(base["qid"])}
    shifted = {s: base.assign(ap=(base["ap"] + shift).clip(0, 1)) for s, shift in ((1, -0.06), (2, 0.0), (3, 0.06))}
    same = resample({"v": {1: base, 2: base.copy(), 3: base.copy()}}, article, n_boot=300, seed=2)
    one = resample({"v": {1: base}}, article, n_boot=300, seed=2)
    spread = resample({"v": shifted}, article, n_boot=300, seed=2)
    np.testing.assert_allclose(same.values["v"]["map.multi"], one.values["v"]["map.multi"], rtol=0, atol=1e-12)
    width = lambda r: np.subtract(*_interval(r.values["v"]["map.multi"][1:])[::-1])
    assert width(spread) > 1.5 * width(one)
    ints = spread.intervals().set_index("metric")
    ones = {q: 1 for q in article}
    per_seed = [_direct(t, ones)["map.multi"] for t in shifted.values()]
    assert ints.loc["map.multi", "seed_sd"] == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    assert ints.loc["map.multi", "seed_sd"] > 0.03
    assert ints.loc["map.multi", "estimate"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert ints.loc["map.multi", "n_seeds"] == 3
    assert same.intervals().set_index("metric").loc["map.multi", "seed_sd"] == 0


def test_one_seed_says_training_variance_is_not_covered():
    scores, meta = _pool(20, seed=1)
    tables = {"base": {None: _per_query(scores, meta)}, "hybrid": {13: _per_query(scores, meta, 0.1)}}
    one = {"xquad_r": resample(tables, None, n_boot=50, seed=1)}
    assert "training variance is not covered" in coverage_sentence(one)
    assert record(one)["method"]["covers_training_seeds"] is False
    # base has no training seed: two seeds of the trained variant cover training variance
    tables["hybrid"][14] = _per_query(scores, meta, 0.2)
    two = {"xquad_r": resample(tables, None, n_boot=50, seed=1)}
    assert two["xquad_r"].covers_training_seeds and "not covered" not in coverage_sentence(two)
    rec = record(two)
    assert rec["method"]["covers_training_seeds"] is True and len(rec["pairs"]) == len([m for m in METRICS if not m.startswith("bias.")])  # no bias columns here
    ints, pairs = frames(two)
    assert list(ints.columns[:3]) == ["dataset", "variant", "metric"] and set(pairs["dataset"]) == {"xquad_r"}


def test_article_clusters_link_articles_through_question_ids():
    queries = pd.DataFrame({"qid": ["a", "b", "a", "b", "c", "c", "d"], "lang": ["en", "en", "de", "de", "en", "de", "de"],
                            "article": [0, 0, 5, 6, 1, 6, 7]})
    # en:0 holds a and b; b is in de:6 with c; so a, b, c are one cluster; d (de:7) is alone
    assert article_clusters(queries) == {"a": "de:5", "b": "de:5", "c": "de:5", "d": "de:7"}
    assert article_clusters(queries.iloc[::-1]) == article_clusters(queries)


def test_article_clusters_of_the_real_pools():
    xq, _ = load_pool(SHARED_CORPORA / "xquad-r", ["de", "el", "en"])
    assert len(set(article_clusters(xq).values())) == 48  # XQuAD's articles, the same in every language
    ml, _ = load_pool(SHARED_CORPORA / "mlqa-r", ["ar", "de", "en", "es", "hi", "vi", "zh"])
    clusters = article_clusters(ml)
    english = ml[ml["lang"] == "en"].set_index("qid")["article"]
    assert len(clusters) == 1148 and len(set(clusters.values())) == english.nunique() == 520
    # one cluster per English article: two question ids share a cluster iff they share their English article
    pairs = pd.DataFrame({"cluster": pd.Series(clusters), "en": english})
    assert (pairs.groupby("cluster")["en"].nunique() == 1).all()


def _coverage(n_data: int, n_seeds: int, n_articles: int, per_article: int, seed_sd: float, seed_article_sd: float,
              variant_article_sd: float, n_boot: int = 200) -> np.ndarray:
    """Share of constructed datasets where the 95% interval of the difference of two identical variants
    covers 0: (by articles, by question ids)."""
    rng = np.random.default_rng(0)
    qid = np.array([f"q{g}_{i}" for g in range(n_articles) for i in range(per_article)] * 2)
    g_of = np.tile(np.repeat(np.arange(n_articles), per_article), 2)
    lang = np.repeat(["de", "en"], n_articles * per_article)
    article = dict(zip(qid, g_of.tolist()))
    hits = np.zeros(2)
    for k in range(n_data):
        difficulty = rng.normal(0.5, 0.1, n_articles)  # shared by both variants
        tables = {}
        for v in ("a", "b"):  # the same distribution
            systematic = rng.normal(0, variant_article_sd, n_articles)  # this variant on this article
            tables[v] = {s: pd.DataFrame({
                "setting": "multi", "query_lang": lang, "passage_lang": "all", "qid": qid, "recall": 0.0,
                "rank_distance": 0.0,
                "ap": difficulty[g_of] + systematic[g_of] + rng.normal(0, seed_sd)
                + rng.normal(0, seed_article_sd, n_articles)[g_of] + rng.normal(0, 0.1, len(qid))})
                for s in range(n_seeds)}
        for j, clusters in enumerate((article, None)):
            d = resample(tables, clusters, n_boot=n_boot, seed=k).difference("b", "a", "map.multi")
            lo, hi = _interval(d[1:])
            hits[j] += lo <= 0 <= hi
    return hits / n_data


def test_interval_of_two_identical_variants_covers_zero_at_about_the_nominal_rate():
    # 200 datasets x 200 replicates, 48 articles (XQuAD's number). Binomial SE of a rate near 0.93 over 200
    # datasets: 0.018; over 1000 of them this generator gives 0.93 (articles) and 0.88 (question ids), the
    # percentile bootstrap's known small shortfall with few clusters (see hybrid_ir/resampling.py)
    by_article, by_qid = _coverage(200, 1, 48, 4, 0.0, 0.0, 0.03)
    assert 0.89 <= by_article <= 0.98
    assert by_qid < by_article - 0.03  # questions of one article are correlated: id resampling is too narrow
    # three seeds, with seed-level shifts and seed-by-article effects besides the systematic ones (100
    # datasets; over 1000 this generator gives 0.97: the seed-by-article variance is counted at both levels)
    by_article, _ = _coverage(100, 3, 48, 4, 0.005, 0.02, 0.02)
    assert 0.89 <= by_article < 1.0  # not every interval: they are not merely wide
