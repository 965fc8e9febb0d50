import pandas as pd
import pytest

from hybrid_ir.evalsets import article_split, load_pool, sample_question_ids
from hybrid_ir.pair_store import TABLE_COLUMNS as COLUMNS
from hybrid_ir.pair_store import PairStore
from hybrid_ir.pairs import build_pair_table, mix_sources
from tests.helpers import build_pairs
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
    counts = PairStore.from_table(pairs).counts()
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
    # context: the candidate's whole paragraph (encode.candidate_context), the same for its siblings
    assert all(t in c for t, c in zip(candidates["text"], candidates["context"]))
    assert (candidates.groupby(["lang", "paragraph"])["context"].nunique() == 1).all()
    assert candidates.groupby(["lang", "paragraph"]).ngroups < len(candidates)


def test_mlqa_r_sample_keeps_whole_paragraphs():
    ids = sample_question_ids(MLQA, ["de", "en"], 30, seed=3)
    assert len(ids) == 30 and ids == sample_question_ids(MLQA, ["de", "en"], 30, seed=3)
    queries, candidates = load_pool(MLQA, ["de", "en"], qids=ids)
    assert set(queries["qid"]) <= ids and set(candidates["paragraph"]) == set(queries["paragraph"])
    kept = {q for qs in candidates["qids"] for q in qs}
    assert kept == set(queries["qid"])


def _units(source, n_qids, langs):
    return pd.DataFrame([
        {"source": source, "qid": f"{source}{i}", "title": "", "article": -1, "lang": lang, "query": f"q{i}{lang}",
         "positive": f"p{i}{lang}", "negative": f"n{i}{lang}", "positive_id": f"{source}{i}", "negative_id": f"{source}{i}"}
        for i in range(n_qids) for lang in langs])


def test_pair_table_crosses_the_languages_each_question_has():
    units = pd.concat([_units("a", 3, ["de", "en"]), _units("b", 2, ["en", "ru", "zh"])], ignore_index=True)
    table = build_pair_table(units, ["de", "en", "ru"])  # zh is not a training language
    assert list(table.columns) == COLUMNS
    assert table.groupby("source").size().to_dict() == {"a": 3 * 4, "b": 2 * 4}
    assert set(table.loc[table["source"] == "b", "query_lang"]) == {"en", "ru"}
    row = table[(table["qid"] == "b1") & (table["query_lang"] == "ru") & (table["passage_lang"] == "en")].iloc[0]
    assert (row["query"], row["positive"], row["kind"]) == ("q1ru", "p1en", "cross")
    assert table.equals(table.sort_values(["qid", "query_lang", "passage_lang"], ignore_index=True))
    assert PairStore.from_table(table).counts()["per_source"] == {"a": 12, "b": 8}


def test_mix_sources_proportional_and_equal():
    units = pd.concat([_units("big", 30, ["en"]), _units("small", 10, ["en"])], ignore_index=True)
    same, summary = mix_sources(units, "proportional", 0, seed=1)
    assert len(same) == len(units) and summary["big"] == {"questions": 30, "kept": 30, "share": 0.75}
    capped, summary = mix_sources(units, "proportional", 20, seed=1)
    assert capped.groupby("source")["qid"].nunique().to_dict() == {"big": 15, "small": 5}
    equal, summary = mix_sources(units, "equal", 0, seed=1)
    assert equal.groupby("source")["qid"].nunique().to_dict() == {"big": 10, "small": 10}
    assert summary["small"]["share"] == 0.5
    again, _ = mix_sources(units, "equal", 0, seed=1)
    pd.testing.assert_frame_equal(equal, again)
