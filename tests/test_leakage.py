import json

import pandas as pd
import pytest

from hybrid_ir.evalsets import article_split
from hybrid_ir.leakage import (MIN_CHARS, LeakError, check_no_leak, eval_sets, exclude_overlap, normalize_text,
                               normalize_title)
from hybrid_ir.pairs import build_pair_table, guard_articles
from hybrid_ir.sources import xquad_units
from tests.helpers import SHARED_CORPORA

XQ, XQR, MLQA = SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", SHARED_CORPORA / "mlqa-r"
LANGS = ["de", "en"]


@pytest.fixture(scope="module")
def setup():
    train, _ = article_split(36, 12, seed=13)
    ev = eval_sets(XQR, MLQA, guard_articles(["xquad"], train))
    units = xquad_units(XQ, XQR, LANGS, train[:6], seed=1)
    return ev, units


def _mlqa_r_example():
    doc = json.loads((MLQA / "en.json").read_text())["data"][0]
    para = doc["paragraphs"][0]
    start, end = max(para["sentence_breaks"], key=lambda b: b[1] - b[0])
    return doc["title"], para["qas"][0]["id"], para["context"][start:end]


def _clean(units, ev):
    kept, _ = exclude_overlap(units, ev)
    return kept


def test_clean_units_pass_and_report_the_rows_they_make(setup):
    ev, units = setup
    clean = _clean(units, ev)
    table = build_pair_table(clean, LANGS)
    checked = check_no_leak(clean, ev, rows=len(table))
    assert checked["rows_checked"] == len(table) > 0 and checked["eval_question_ids"] == len(ev.qids)


@pytest.mark.parametrize("kind", ["question_id", "title", "passage_text"])
def test_planted_leak_fails_with_count_and_example(setup, kind):
    ev, units = setup
    title, qid, sentence = _mlqa_r_example()
    planted = _clean(units, ev).copy()
    rows = planted["qid"] == planted["qid"].iloc[0]
    if kind == "question_id":
        planted.loc[rows, "qid"] = qid
    elif kind == "title":
        planted.loc[rows, "title"] = title.replace(" ", "_")  # SQuAD spelling of the same title
    else:  # an evaluation sentence inside a longer training passage, re-spaced and upper-cased
        planted.loc[rows, "positive"] = "Some lead-in text here.  " + sentence.upper().replace(" ", "  ")
    with pytest.raises(LeakError) as err:
        check_no_leak(planted, ev, rows=len(build_pair_table(planted, LANGS)))
    message = str(err.value)
    assert f"{len(LANGS)} units by {kind}" in message  # the question's unit in each language
    assert "pairs.exclude_eval_overlap" in message


def test_exclusion_drops_planted_units_and_reports_them(setup):
    ev, units = setup
    title, qid, sentence = _mlqa_r_example()
    planted = units.copy()
    planted.loc[0, "qid"] = qid
    planted.loc[1, "title"] = title
    planted.loc[2, "negative"] = sentence
    kept, report = exclude_overlap(planted, ev)
    assert len(kept) == len(units) - 3
    assert report["question_id"] == {"units": 1, "examples": [qid]}
    assert report["title"]["examples"] == [title]
    assert report["passage_text"]["examples"] == [sentence]
    check_no_leak(kept, ev, rows=len(build_pair_table(kept, LANGS)))


def test_xquad_training_articles_that_share_an_mlqa_r_title_are_excluded(setup):
    ev, _ = setup
    train, _ = article_split(36, 12, seed=13)
    units = xquad_units(XQ, XQR, ["en"], train, seed=1)
    kept, report = exclude_overlap(units, ev)
    leaked = {t for t in units["title"] if normalize_title(t) in ev.titles}
    assert leaked and set(report["title"]["examples"]) == leaked
    assert not set(kept["title"]) & leaked and set(kept["title"]) == set(units["title"]) - leaked


def test_short_fragments_are_not_compared():
    assert normalize_text("  Hello\u00a0  World ") == "hello world"
    ev = eval_sets(XQR, MLQA, [])
    assert all(len(t) >= MIN_CHARS for t in ev.texts)
    units = pd.DataFrame([{"source": "x", "qid": "q", "title": "", "article": 0, "lang": "en", "query": "?",
                           "positive": "[citation needed]", "negative": "ए.", "positive_id": "a", "negative_id": "a"}])
    assert exclude_overlap(units, ev)[1] == {}
