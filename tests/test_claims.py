import itertools

import numpy as np
import pandas as pd
import pytest
from repro_eval.measure.overall_effects import DRI, ER

from hybrid_ir.claims import (CONTRADICTED, MAP_MARGIN, NOT_EVALUATED, NOT_RESOLVED, PAPER_POOL, RD_MARGIN_SHARE,
                              SUPPORTED, claims_record, claims_table, delta_ri, effect_ratio, languages_trained_on,
                              summary_sentence, verdict)
from hybrid_ir.report import PAPER, claims_lines


def test_verdict_rules_on_constructed_differences():
    # superiority (null 0)
    assert verdict(-0.010, 0.012, 0.90, 0.0) == NOT_RESOLVED   # a tie is never agreement
    assert verdict(0.010, 0.030, 0.004, 0.0) == SUPPORTED      # a significant gain
    assert verdict(-0.030, -0.010, 0.004, 0.0) == CONTRADICTED  # a significant loss
    assert verdict(0.010, 0.030, 0.080, 0.0) == NOT_RESOLVED   # significant alone, not after Holm
    assert verdict(-0.001, 0.050, 0.200, 0.0) == NOT_RESOLVED  # a large point estimate alone decides nothing
    # non-inferiority (null -margin)
    assert verdict(-0.004, 0.002, 0.004, -0.005) == SUPPORTED     # worse by less than the margin
    assert verdict(-0.009, 0.002, 0.300, -0.005) == NOT_RESOLVED  # the interval reaches past the margin
    assert verdict(-0.020, -0.008, 0.004, -0.005) == CONTRADICTED  # worse beyond the margin
    assert verdict(float("nan"), float("nan"), float("nan"), 0.0) == NOT_EVALUATED


LANGS = ["de", "el", "en", "vi"]


def _tables(rng, n_articles=24, per_article=5, langs=LANGS):
    """Per-query tables of mono, cross and hybrid (one seed) with known effects, qid -> article map.

    hybrid vs X-X-mono on mono mAP: -0.002 (within the margin); vs X-Y on cross mAP: -0.05 (beyond it);
    multi mAP: +0.03 over X-X-mono, exactly X-Y's (a tie); rank distance: 2 ranks above X-Y's (within a
    margin of 7), 50 below X-X-mono's."""
    qids = [f"q{g}_{i}" for g in range(n_articles) for i in range(per_article)]
    article = {q: int(q[1:].split("_")[0]) for q in qids}
    rows = []
    for q in qids:
        for x in langs:
            for setting, ys in (("mono", [x]), ("cross", [y for y in langs if y != x]), ("multi", ["all"])):
                for y in ys:
                    rows.append((setting, x, y, q))
    frame = pd.DataFrame(rows, columns=["setting", "query_lang", "passage_lang", "qid"])
    n = len(frame)
    is_ = {s: (frame["setting"] == s).to_numpy() for s in ("mono", "cross", "multi")}
    ap = rng.uniform(0.3, 0.7, n)
    rd = np.where(is_["multi"], rng.uniform(50, 150, n), np.nan)
    noise = lambda: rng.normal(0, 0.002, n)
    mono = frame.assign(ap=ap, recall=0.0, rank_distance=rd + np.where(is_["multi"], 50, 0))
    cross = frame.assign(ap=ap + noise(), recall=0.0, rank_distance=rd - 2)
    hybrid_ap = np.where(is_["mono"], ap - 0.002 + noise(), np.where(is_["cross"], cross["ap"] - 0.05 + noise(), ap))
    hybrid_ap = np.where(is_["multi"], ap + 0.03, hybrid_ap)
    hybrid = frame.assign(ap=hybrid_ap, recall=0.0, rank_distance=rd)
    cross = cross.assign(ap=np.where(is_["multi"], hybrid_ap, cross["ap"]))  # multi: hybrid ties X-Y exactly
    return {"mono": {13: mono}, "cross": {13: cross}, "hybrid": {13: hybrid}}, article


def _table(**kw):
    rng = np.random.default_rng(4)
    with_unseen, article = _tables(rng)
    without, article2 = _tables(rng, langs=["de", "en"])
    per_query = {"xquad_r": with_unseen, "mlqa_r": without}
    return claims_table(per_query, {"xquad_r": article, "mlqa_r": article2}, {"xquad_r": 10_000, "mlqa_r": 10_000},
                        n_boot=2000, seed=3, **kw)


def test_claims_table_verdicts_on_constructed_effects():
    table, resampled = _table(trained=["de", "en", "vi"])
    assert set(resampled) == {"xquad_r", "mlqa_r"} and resampled["xquad_r"].cluster == "article"
    rows = table.set_index(["dataset", "scope", "claim"])
    scope = "el, vi (trained on here: vi)"
    for s in ("all languages", scope):
        r = lambda claim: rows.loc[("xquad_r", s, claim)]
        assert r("mono mAP ≥ X-X-mono")["diff"] == pytest.approx(-0.002, abs=5e-4)
        assert r("mono mAP ≥ X-X-mono")["verdict"] == SUPPORTED      # non-inferior within 0.005
        assert r("cross mAP ≥ X-Y")["verdict"] == CONTRADICTED        # 0.05 worse: beyond the margin
        assert r("multi mAP > X-X-mono")["diff"] == pytest.approx(0.03)
        assert r("multi mAP > X-X-mono")["verdict"] == SUPPORTED
        tie = r("multi mAP > X-Y")
        assert tie["diff"] == 0 and tie["p"] == 1 and tie["verdict"] == NOT_RESOLVED  # a tie is never agreement
        near = r("rank distance ≤ X-Y")  # oriented baseline - hybrid: -2 ranks, margin 7 ranks
        assert near["diff"] == pytest.approx(-2) and near["margin"] == pytest.approx(7) and near["verdict"] == SUPPORTED
        assert r("rank distance < X-X-mono")["diff"] == pytest.approx(50)
        assert r("rank distance < X-X-mono")["verdict"] == SUPPORTED
    # MLQA-R here has neither el nor vi: its unseen rows are not evaluated and stay out of the family
    missing = table[(table["dataset"] == "mlqa_r") & (table["scope"] == "el, vi")]
    assert len(missing) == 6 and (missing["verdict"] == NOT_EVALUATED).all() and missing["p_holm"].isna().all()
    # Breuer et al.'s measures only where the paper has the row (not per language)
    assert table.loc[table["scope"] == scope, "er_XLM-R"].isna().all()
    assert table.loc[table["scope"] == "all languages", "er_LaBSE"].notna().all()


def _holm_by_hand(p):
    """Holm step-down written out: sort, multiply the i-th smallest (0-based) by m - i, running max, cap 1."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [None] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_holm_over_the_whole_table_against_a_hand_computation():
    table, _ = _table()
    evaluated = table[table["verdict"] != NOT_EVALUATED]
    assert len(evaluated) == 18  # 6 claims x (XQuAD-R all, XQuAD-R el/vi, MLQA-R all): one family
    assert evaluated["p_holm"].tolist() == pytest.approx(_holm_by_hand(evaluated["p"].tolist()), abs=1e-15)
    assert _holm_by_hand([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert (evaluated["p_holm"] >= evaluated["p"]).all()


def test_effect_ratio_and_delta_ri_match_repro_eval_and_a_hand_computation():
    # hand: the paper's hybrid - X-X-mono on XQuAD-R mono (XLM-R) is .798 - .792 = .006; ours .830 - .827 = .003
    assert effect_ratio(0.830, 0.827, 0.798, 0.792) == pytest.approx(0.5)
    assert delta_ri(0.830, 0.827, 0.798, 0.792) == pytest.approx(0.006 / 0.792 - 0.003 / 0.827)
    assert np.isnan(effect_ratio(0.63, 0.60, 0.593, 0.593))  # the paper shows no effect: ER undefined
    for ours_a, ours_b, paper_a, paper_b in itertools.product((0.61, 0.55), (0.58,), (0.705,), (0.674, 0.700)):
        run = lambda v: {"t": {"map": v}}  # repro_eval takes {topic: {measure: score}}; here means of other topics
        assert effect_ratio(ours_a, ours_b, paper_a, paper_b) == pytest.approx(
            ER(run(paper_a), run(paper_b), run(ours_a), run(ours_b))["map"], abs=1e-12)
        assert delta_ri(ours_a, ours_b, paper_a, paper_b) == pytest.approx(
            DRI(run(paper_a), run(paper_b), run(ours_a), run(ours_b))["map"], abs=1e-12)
    # rank distance, lower is better: the relative reduction, so delta RI changes sign, ER does not
    ours, paper = (137.2, 152.6), (286.6, 410.2)
    raw = [{"t": {"rd": v}} for v in (*paper, *ours)]
    assert delta_ri(*ours, *paper, lower_better=True) == pytest.approx(-DRI(*raw)["rd"], abs=1e-12)
    assert effect_ratio(*ours, *paper) == pytest.approx(ER(*raw)["rd"], abs=1e-12)


def test_claims_table_effects_use_the_papers_rows():
    table, resampled = _table()
    row = table[(table["dataset"] == "xquad_r") & (table["scope"] == "all languages")
                & (table["claim"] == "multi mAP > X-X-mono")].iloc[0]
    paper = PAPER.set_index(["init", "variant"])["xquad_r.map.multi"]
    ours = {v: resampled["xquad_r"].values[v]["map.multi"][0] for v in ("hybrid", "mono")}
    for init in ("XLM-R", "LaBSE"):
        assert row[f"er_{init}"] == pytest.approx((ours["hybrid"] - ours["mono"])
                                                  / (paper[(init, "hybrid")] - paper[(init, "mono")]))
        assert row[f"dri_{init}"] == pytest.approx(
            (paper[(init, "hybrid")] - paper[(init, "mono")]) / paper[(init, "mono")]
            - (ours["hybrid"] - ours["mono"]) / ours["mono"])


def test_margins_follow_their_rule_from_the_papers_tables():
    """A quarter of the median specialist advantage in Tables 1-2 (see hybrid_ir/claims.py)."""
    p = PAPER.set_index(["init", "variant"])
    advantages, shares = [], []
    for init in ("XLM-R", "LaBSE"):
        for d in ("xquad_r", "mlqa_r"):
            advantages.append(p.loc[(init, "mono"), f"{d}.map.mono"] - p.loc[(init, "cross"), f"{d}.map.mono"])
            advantages.append(p.loc[(init, "cross"), f"{d}.map.cross"] - p.loc[(init, "mono"), f"{d}.map.cross"])
            shares.append((p.loc[(init, "mono"), f"{d}.rank_distance"] - p.loc[(init, "cross"), f"{d}.rank_distance"])
                          / PAPER_POOL[d])
    assert min(advantages) > 0 and min(shares) > 0  # each specialist wins its own setting in the paper
    assert MAP_MARGIN == round(np.median(advantages) / 4, 3) and MAP_MARGIN < min(advantages)
    assert RD_MARGIN_SHARE == round(np.median(shares) / 4, 4) and RD_MARGIN_SHARE < min(shares)


def test_rendering_record_and_the_plain_sentence():
    table, _ = _table()
    sentence = summary_sentence(table, covers_training_seeds=False)
    assert sentence.startswith("Of 18 claim rows, 12 are supported, 3 contradicted and 3 not resolved")
    assert "one training seed" in sentence
    assert "one training seed" not in summary_sentence(table, covers_training_seeds=True)
    text = "\n".join(claims_lines(table, sentence, "Intervals resample articles."))
    assert "## The paper's claims" in text and "| ER XLM-R | ΔRI XLM-R | ER LaBSE | ΔRI LaBSE |" in text
    assert "| XQuAD-R | all languages | hybrid multi mAP > X-Y | superiority | +0.000 | [+0.000, +0.000] | 1.000 | " \
           "1.000 | **not resolved** |" in text
    assert "| MLQA-R | el, vi | hybrid mono mAP ≥ X-X-mono | non-inferiority (0.005) | – | [–, –] | – | – | " \
           "**not evaluated** |" in text
    rec = claims_record(table)
    assert len(rec["rows"]) == 24 and rec["rules"]["map_margin"] == MAP_MARGIN
    assert rec["rows"][-1]["diff"] is None  # NaN written as null


def test_languages_trained_on():
    assert languages_trained_on({"de-de": 5, "de-en": 3, "en-de": 3, "en-en": 5, "el-el": 0}) == {"de", "en"}
