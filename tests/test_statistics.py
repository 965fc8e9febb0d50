import numpy as np
import pandas as pd
import pytest

from hybrid_ir.bias import attach, language_bias
from hybrid_ir.metrics import evaluate_pool
from hybrid_ir.statistics import (
    METRICS,
    bootstrap,
    bootstrap_datasets,
    holm,
    metric_replicates,
    paired_p_value,
    resample_counts,
    stats_record,
)
from tests.helpers import random_pool

LANGS = ["ar", "de", "en"]


def _pool(n_qids, seed, skill=0.0):
    return random_pool(n_qids, seed, skill=skill, langs=LANGS)


def _evaluated(scores, meta):
    """The per-query table the evaluate stage writes: LAReQA metrics and the bias measures."""
    result = evaluate_pool(scores, **meta)
    return attach(result.per_query_all, result.table, language_bias(scores, **meta))[0]


def _per_query(n_qids, seed, skill=0.0):
    scores, meta = _pool(n_qids, seed, skill)
    return _evaluated(scores, meta)


def _flat(summary):
    return {"map.mono": summary["map"]["mono"], "map.cross": summary["map"]["cross"],
            "map.multi": summary["map"]["multi"], "map.multi_micro": summary["map"]["multi_micro"],
            "recall.mono_r1": summary["recall"]["mono_r1"], "recall.cross_r1": summary["recall"]["cross_r1"],
            "recall.multi_r10": summary["recall"]["multi_r10"], "rank_distance": summary["rank_distance"]}


def test_a_replicate_is_the_metric_of_the_resampled_question_set():
    scores, meta = _pool(30, seed=1)
    out = evaluate_pool(scores, **meta)
    qids = sorted(set(meta["q_qid"]))
    rng = np.random.default_rng(5)
    w = rng.integers(0, 3, size=len(qids)).astype(float)  # some questions dropped, some twice
    w[:3] = 0
    reps = metric_replicates(out.per_query_all, np.vstack([np.ones(len(qids)), w]), qids)
    # the same pool with every query row repeated w[qid] times, evaluated directly
    times = dict(zip(qids, w.astype(int)))
    rows = [i for i, q in enumerate(meta["q_qid"]) for _ in range(times[q])]
    direct = evaluate_pool(scores[rows], [meta["q_lang"][i] for i in rows], [meta["q_qid"][i] for i in rows],
                           meta["c_lang"], meta["c_qids"])
    for name, value in _flat(out.summary).items():
        assert reps[name][0] == pytest.approx(value, abs=1e-12), name
    for name, value in _flat(direct.summary).items():
        assert reps[name][1] == pytest.approx(value, abs=1e-12), name
    assert not any(name.startswith("bias.") for name in reps)  # no bias columns in this table: left out


def _synthetic(n_qids, seed):
    """Per-query rows drawn from one fixed distribution whatever the number of questions."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_qids):
        for x in LANGS:
            for setting, ys in (("mono", [x]), ("cross", [y for y in LANGS if y != x]), ("multi", ["all"])):
                for y in ys:
                    rows.append((setting, x, y, f"q{i}", rng.beta(4, 2), float(rng.random() < 0.6),
                                 rng.uniform(0, 50) if setting == "multi" else np.nan))
    return pd.DataFrame(rows, columns=["setting", "query_lang", "passage_lang", "qid", "ap", "recall", "rank_distance"])


def test_interval_contains_the_estimate():
    scores, meta = _pool(60, seed=2)
    out = evaluate_pool(scores, **meta)
    intervals, _ = bootstrap({"v": out.per_query_all}, n_boot=400, seed=3)
    intervals = intervals.set_index("metric")
    assert (intervals["n_questions"] == 60).all() and (intervals["n_boot"] == 400).all()
    for name, value in _flat(out.summary).items():
        row = intervals.loc[name]
        assert row["estimate"] == pytest.approx(value, abs=1e-12)
        assert row["lo"] < row["estimate"] < row["hi"], name


def test_interval_shrinks_with_more_questions():
    widths = {}
    for n in (40, 640):
        intervals, _ = bootstrap({"v": _synthetic(n, seed=n)}, n_boot=400, seed=3)
        widths[n] = (intervals["hi"] - intervals["lo"]).to_numpy()
    assert (widths[640] < widths[40] / 2).all()  # about 1/sqrt(16) = 1/4 of the width


def test_paired_test_finds_a_large_difference_and_not_an_identity():
    scores, meta = _pool(80, seed=4)
    weak = _evaluated(scores, meta)
    strong = _evaluated(scores + 0.3 * np.array([[q in c for c in meta["c_qids"]] for q in meta["q_qid"]]), meta)
    _, pairs = bootstrap({"weak": weak, "strong": strong, "same": weak.copy()}, n_boot=500, seed=7)
    p = pairs.set_index(["a", "b", "metric"])
    big = p.loc[("strong", "weak", "map.multi")]
    assert big["diff"] > 0.1 and big["lo"] > 0 and big["p"] < 0.01 and big["p_holm"] < 0.05
    assert p.loc[("strong", "weak", "rank_distance"), "diff"] < 0  # better model, less bias
    same = pairs[(pairs["a"] == "same") & (pairs["b"] == "weak")]
    assert len(same) == len(METRICS)
    assert (same["diff"] == 0).all() and (same["p"] == 1).all() and (same["lo"] == 0).all()
    # "same" is scored against "strong" too, with the order of the input dict kept
    assert ("same", "strong", "map.multi") in p.index


def test_bootstrap_is_bit_for_bit_deterministic_for_a_seed():
    per_query = {}
    for d, seed in (("xquad_r", 8), ("mlqa_r", 9)):
        per_query[d] = {"mono": _per_query(25, seed), "hybrid": _per_query(25, seed, skill=0.2)}
    first = bootstrap_datasets(per_query, n_boot=200, seed=13)
    again = bootstrap_datasets(per_query, n_boot=200, seed=13)
    other = bootstrap_datasets(per_query, n_boot=200, seed=14)
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not first[0]["lo"].equals(other[0]["lo"])
    assert set(first[0]["dataset"]) == {"xquad_r", "mlqa_r"} and set(first[0]["metric"]) == set(METRICS)
    record = stats_record(*first, 200, 13)
    assert record["method"]["n_boot"] == 200 and len(record["pairs"]) == 2 * len(METRICS)


def test_resample_counts_p_value_and_holm_by_hand():
    w = resample_counts(7, 50, seed=1)
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all()
    assert np.array_equal(w, resample_counts(7, 50, seed=1))
    # 3 of 9 replicates <= 0: p = 2 * (3 + 1) / 10
    assert paired_p_value(np.array([-1, -2, 0, 1, 2, 3, 4, 5, 6.0])) == pytest.approx(0.8)
    assert paired_p_value(np.arange(1, 100.0)) == pytest.approx(2 / 100)
    assert paired_p_value(np.zeros(10)) == 1.0
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])


def test_topic_bootstrap_is_paired_stratified_and_deterministic():
    from hybrid_ir.statistics import topic_bootstrap

    rng = np.random.default_rng(0)
    frames = {}
    for v, shift in (("base", 0.0), ("mono", 0.0), ("hybrid", 0.3)):
        rows = [{"lang": lang, "qid": f"{lang}{i}", "ndcg_10": min(1.0, rng.random() * 0.5 + shift)}
                for lang, n in (("sw", 40), ("yo", 15)) for i in range(n)]
        frames[v] = pd.DataFrame(rows)
    frames["mono"] = frames["base"].copy()  # identical to base
    intervals, pairs = topic_bootstrap(frames, ["ndcg_10"], n_boot=200, seed=3)
    again = topic_bootstrap(frames, ["ndcg_10"], n_boot=200, seed=3)
    pd.testing.assert_frame_equal(intervals, again[0])
    pd.testing.assert_frame_equal(pairs, again[1])
    mean = intervals[(intervals["lang"] == "mean") & (intervals["variant"] == "base")].iloc[0]
    sw = frames["base"][frames["base"]["lang"] == "sw"]["ndcg_10"].mean()
    yo = frames["base"][frames["base"]["lang"] == "yo"]["ndcg_10"].mean()
    assert mean["estimate"] == pytest.approx((sw + yo) / 2) and mean["lo"] < mean["estimate"] < mean["hi"]
    assert mean["n_topics"] == 55
    same = pairs[(pairs["a"] == "mono") & (pairs["b"] == "base") & (pairs["lang"] == "mean")].iloc[0]
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0 and same["p"] == 1
    better = pairs[(pairs["a"] == "hybrid") & (pairs["b"] == "base") & (pairs["lang"] == "mean")].iloc[0]
    assert better["diff"] > 0.2 and better["lo"] > 0 and better["p"] < 0.05 and better["p_holm"] >= better["p"]


def test_cell_differences_per_language_pair():
    from hybrid_ir.statistics import cell_differences

    scores, meta = _pool(60, seed=11)
    relevant = np.array([[q in c for c in meta["c_qids"]] for q in meta["q_qid"]])
    lift = relevant * np.isin(np.array(meta["q_lang"]), ["de"])[:, None]  # a better model for German queries
    tables = {"mono": evaluate_pool(scores, **meta).per_query_all,
              "cross": evaluate_pool(scores, **meta).per_query_all,
              "hybrid": evaluate_pool(scores + 0.5 * lift, **meta).per_query_all}
    out = cell_differences(tables, [("hybrid", "mono"), ("hybrid", "cross")], n_boot=300, seed=2)
    assert len(out) == 2 * len(LANGS) ** 2  # mono cells on the diagonal, cross cells off it
    cell = out.set_index(["b", "query_lang", "passage_lang"])
    for b in ("mono", "cross"):
        for x in LANGS:
            for y in LANGS:
                rows = {v: t[(t["setting"] == ("mono" if x == y else "cross")) & (t["query_lang"] == x)
                             & (t["passage_lang"] == y)]["ap"].mean() for v, t in tables.items()}
                r = cell.loc[(b, x, y)]
                assert r["diff"] == pytest.approx(rows["hybrid"] - rows[b], abs=1e-12)
                assert r["lo"] <= r["diff"] <= r["hi"]
                if x == "de":
                    assert r["diff"] > 0.05 and r["significant"] and r["p"] < 0.05
                else:  # the same rankings: no difference, p = 1
                    assert r["diff"] == 0 and not r["significant"] and r["p"] == 1
    assert (out["p_holm"] >= out["p"]).all()
    again = cell_differences(tables, [("hybrid", "mono"), ("hybrid", "cross")], n_boot=300, seed=2)
    pd.testing.assert_frame_equal(out, again)
