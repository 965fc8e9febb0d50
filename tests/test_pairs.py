import pandas as pd
import pytest

from hybrid_ir.evalsets import article_split, load_pool, sample_question_ids
from hybrid_ir.pairs import COLUMNS, build_pairs, pair_counts
from tests.helpers import SHARED_CORPORA

XQ, XQR, MLQA = SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", SHARED_CORPORA / "mlqa-r"


def test_split_is_disjoint_seeded_and_sized():
    train, ev = article_split(36, 12, seed=13)
    assert len(train) == 36 and len(ev) == 12 and not set(train) & set(ev)
    assert article_split(36, 12, seed=13) == (train, ev)
    assert article_split(36, 12, seed=14) != (train, ev)


@pytest.fixture(scope="module")
def pairs():
    return build_pairs(XQ, XQR, ["de", "en", "zh"], articles=[0, 5], seed=1)


def test_pair_table_schema_and_combinations(pairs):
    assert list(pairs.columns) == COLUMNS
    per_qid = pairs.groupby("qid").size()
    assert (per_qid == 9).all()  # 3 mono + 6 ordered cross rows per question
    assert set(pairs["article"]) == {0, 5}
    assert (pairs["kind"] == "mono").sum() == 3 * pairs["qid"].nunique()
    assert ((pairs["kind"] == "mono") == (pairs["query_lang"] == pairs["passage_lang"])).all()
    counts = pair_counts(pairs)
    assert counts["rows"] == len(pairs) and counts["per_pair"]["de-zh"] == pairs["qid"].nunique()


def test_positive_is_the_answer_sentence_and_negative_another(pairs):
    row = pairs[(pairs["qid"] == "56beb4343aeaaa14008c925b") & (pairs["query_lang"] == "de")
                & (pairs["passage_lang"] == "en")].iloc[0]
    assert row["query"].startswith("Wie viele Punkte")
    assert row["positive"].startswith("The Panthers defense gave up just 308 points")
    assert row["negative"] != row["positive"] and row["negative_id"] == row["positive_id"] == "0:0"
    assert (pairs["positive"] != pairs["negative"]).all()
    # the same qid's positive in one passage language is shared by every query language
    assert pairs.groupby(["qid", "passage_lang"])["positive"].nunique().max() == 1


def test_pairs_are_deterministic(pairs):
    again = build_pairs(XQ, XQR, ["de", "en", "zh"], articles=[0, 5], seed=1)
    pd.testing.assert_frame_equal(pairs, again)


def test_xquad_r_pool_full_counts():
    queries, candidates = load_pool(XQR, ["en", "th"])
    assert len(queries) == 2 * 1190 and len(candidates) == 1180 + 852
    assert candidates["qids"].map(len).sum() == len(queries)  # every question has one answer per language
    assert candidates["cid"].is_unique


def test_mlqa_r_sample_keeps_whole_paragraphs():
    ids = sample_question_ids(MLQA, ["de", "en"], 30, seed=3)
    assert len(ids) == 30 and ids == sample_question_ids(MLQA, ["de", "en"], 30, seed=3)
    queries, candidates = load_pool(MLQA, ["de", "en"], qids=ids)
    assert set(queries["qid"]) <= ids and set(candidates["paragraph"]) == set(queries["paragraph"])
    kept = {q for qs in candidates["qids"] for q in qs}
    assert kept == set(queries["qid"])
