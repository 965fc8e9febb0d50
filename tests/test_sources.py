"""Every loader offline, on tiny fixtures in the upstream schemas (tests/source_fixtures.py)."""
import json

import pandas as pd
import pytest

from hybrid_ir import sources
from hybrid_ir.corpora import CorpusError
from hybrid_ir.sources import UNIT_COLUMNS, Skips, mmarco_units, squad_mlqa_units, xquad_units
from tests import source_fixtures as fx
from tests.helpers import SHARED_CORPORA


@pytest.fixture
def squad_mlqa_dirs(tmp_path):
    squad = fx.write_squad_parquet(tmp_path / "squad")
    mlqa = fx.write_mlqa(tmp_path / "mlqa", ["de", "zh"], drop={fx.QUESTIONS[-1][0]})
    return str(squad), str(mlqa)


def test_squad_mlqa_units_align_languages_by_squad_id(squad_mlqa_dirs):
    skips = Skips()
    units = squad_mlqa_units(*squad_mlqa_dirs, ["en", "de", "zh"], seed=1, max_questions=0, skips=skips)
    assert list(units.columns) == UNIT_COLUMNS
    counts = units.groupby("lang").size().to_dict()
    assert counts == {"en": 6, "de": 5, "zh": 5}  # one question has no translation: it is simply absent
    for _, u in units.iterrows():
        answer = next(a for q, _, _, a in fx.QUESTIONS if q == u["qid"])
        assert answer in u["positive"] and u["negative"] != u["positive"]
        assert u["negative_id"] == u["positive_id"]  # every fixture paragraph has several sentences
    # a question's paragraph key and title are the same in every language (from the English row)
    assert units.groupby("qid")[["positive_id", "title", "article"]].nunique().max().max() == 1
    de = units[(units["lang"] == "de") & (units["qid"] == fx.QUESTIONS[2][0])].iloc[0]
    assert de["query"].startswith("DE: ") and de["positive"] == "DE: Dr. Brown built the first bridge in 1901."
    assert skips.totals() == {}


def test_squad_json_layout_gives_the_same_units(tmp_path, squad_mlqa_dirs):
    json_dir = fx.write_squad_json(tmp_path / "squad_json")
    a = squad_mlqa_units(squad_mlqa_dirs[0], squad_mlqa_dirs[1], ["en", "de"], 1, 0, Skips())
    b = squad_mlqa_units(str(json_dir), squad_mlqa_dirs[1], ["en", "de"], 1, 0, Skips())
    pd.testing.assert_frame_equal(a, b)


def test_squad_question_cap_is_a_seeded_sample(squad_mlqa_dirs):
    one = squad_mlqa_units(*squad_mlqa_dirs, ["en", "de"], seed=3, max_questions=3, skips=Skips())
    again = squad_mlqa_units(*squad_mlqa_dirs, ["en", "de"], seed=3, max_questions=3, skips=Skips())
    assert one["qid"].nunique() == 3
    pd.testing.assert_frame_equal(one, again)


def test_bad_records_are_counted_skips_with_file_and_record(tmp_path, squad_mlqa_dirs):
    path = tmp_path / "mlqa" / "mlqa-translate-train" / "de_squad-translate-train-train-v1.1.json"
    doc = json.loads(path.read_text())
    qas = doc["data"][0]["paragraphs"][0]["qas"]
    del qas[0]["question"]  # a missing field
    qas[1]["answers"][0]["answer_start"] = 10_000  # outside the context
    doc["data"][0]["paragraphs"][1]["qas"].append(  # an id that is no SQuAD train id
        {"id": "not-a-squad-id", "question": "?", "answers": [{"text": "DE", "answer_start": 0}]})
    path.write_text(json.dumps(doc))
    skips = Skips()
    units = squad_mlqa_units(*squad_mlqa_dirs, ["en", "de"], 1, 0, skips)
    report = skips.as_dict()["squad_mlqa"]["de"]
    assert report["read"] == 6
    assert report["skipped"] == {"missing_field": 1, "answer_outside_context": 1, "id_not_in_squad_train": 1}
    assert str(path) in report["examples"]["missing_field"][0] and "record 0" in report["examples"]["missing_field"][0]
    assert "not-a-squad-id" in report["examples"]["id_not_in_squad_train"][0]
    assert (units["lang"] == "de").sum() == 3
    with pytest.raises(CorpusError, match=r"squad_mlqa/de: 3 of 6 records skipped"):
        skips.check(0.05)
    skips.check(0.5)


def test_answer_between_sentences_is_a_counted_skip(tmp_path):
    rows = fx.squad_rows()
    ctx = rows[0]["context"]
    rows[0]["answers"] = {"text": ["x"], "answer_start": [ctx.index(". ") + 1]}  # the space after a full stop
    (tmp_path / "plain_text").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "plain_text" / "train-0.parquet")
    skips = Skips()
    units = squad_mlqa_units(str(tmp_path), "", ["en"], 1, 0, skips)
    assert skips.totals() == {"squad_mlqa": 1} and len(units) == 5
    assert rows[0]["id"] in skips.as_dict()["squad_mlqa"]["en"]["examples"]["answer_outside_sentences"][0]


def test_malformed_json_and_missing_files_name_the_file(tmp_path, squad_mlqa_dirs):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "train-v1.1.json").write_text('{"data": [')
    with pytest.raises(CorpusError, match=r"broken/train-v1.1.json: cannot read SQuAD JSON"):
        squad_mlqa_units(str(bad), squad_mlqa_dirs[1], ["en"], 1, 0, Skips())
    with pytest.raises(CorpusError, match=r"hi_squad-translate-train-train-v1.1.json: MLQA translate-train file not"):
        squad_mlqa_units(squad_mlqa_dirs[0], squad_mlqa_dirs[1], ["en", "hi"], 1, 0, Skips())


def test_mlqa_file_with_no_squad_id_stops(tmp_path, squad_mlqa_dirs):
    path = tmp_path / "mlqa" / "mlqa-translate-train" / "de_squad-translate-train-train-v1.1.json"
    doc = json.loads(path.read_text())
    for para in doc["data"][0]["paragraphs"] + doc["data"][1]["paragraphs"]:
        for qa in para["qas"]:
            qa["id"] = "x" + qa["id"]
    path.write_text(json.dumps(doc))
    with pytest.raises(CorpusError, match="no question id matches a SQuAD v1.1 train id"):
        squad_mlqa_units(*squad_mlqa_dirs, ["en", "de"], 1, 0, Skips())


def test_hub_path_loads_squad_and_mlqa_train_splits(monkeypatch):
    import datasets

    calls = []

    def fake_load(repo, config=None, split=None, revision=None):
        calls.append((repo, config, split, revision))
        if repo == sources.MLQA_HUB and revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found mlqa.py")
        return fx.squad_rows() if repo == sources.SQUAD_HUB else fx.translated_rows(config.split(".")[-1])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    units = squad_mlqa_units("", "", ["en", "es"], 1, 0, Skips())
    assert set(units["lang"]) == {"en", "es"} and len(units) == 12
    assert calls == [(sources.SQUAD_HUB, None, "train", None),
                     (sources.MLQA_HUB, "mlqa-translate-train.es", "train", None),
                     (sources.MLQA_HUB, "mlqa-translate-train.es", "train", "refs/convert/parquet")]


def test_hub_failure_is_one_line_naming_the_dataset(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CorpusError, match=r"cannot load rajpurkar/squad .*pairs.squad_dir"):
        squad_mlqa_units("", "", ["en"], 1, 0, Skips())


def test_mmarco_units_from_the_tsv_layout(tmp_path):
    root = fx.write_mmarco(tmp_path, ["en", "de"])
    skips = Skips()
    units = mmarco_units(str(root), ["en", "de", "el"], max_queries=0, seed=1, skips=skips)  # el: no mMARCO
    assert list(units.columns) == UNIT_COLUMNS and set(units["lang"]) == {"en", "de"}
    assert sorted(units["qid"].unique()) == ["mmarco:101", "mmarco:102", "mmarco:103"]
    row = units[(units["qid"] == "mmarco:101") & (units["lang"] == "de")].iloc[0]  # the first triple of 101
    assert row["positive"] == "DE: " + fx.MMARCO_PASSAGES["7"] and row["negative"] == "DE: " + fx.MMARCO_PASSAGES["10"]
    assert (row["positive_id"], row["negative_id"], row["title"], row["article"]) == ("mmarco:7", "mmarco:10", "", -1)
    capped = mmarco_units(str(root), ["en"], max_queries=2, seed=1, skips=Skips())
    assert capped["qid"].nunique() == 2


def test_mmarco_bad_lines_and_missing_texts_are_counted(tmp_path):
    root = fx.write_mmarco(tmp_path, ["en"])
    collection = root / "data" / "google" / "collections" / "english_collection.tsv"
    lines = collection.read_text().splitlines()
    collection.write_text("\n".join([ln for ln in lines if not ln.startswith("8\t")] + ["garbage line"]) + "\n")
    skips = Skips()
    units = mmarco_units(str(root), ["en"], 0, 1, skips)
    report = skips.as_dict()["mmarco"]
    assert report["english_collection.tsv"]["skipped"] == {"malformed_line": 1}
    assert f"{collection}:5" in report["english_collection.tsv"]["examples"]["malformed_line"][0]
    assert report["en"]["skipped"] == {"missing_text": 1} and len(units) == 2
    with pytest.raises(CorpusError, match="mMARCO file not found"):
        mmarco_units(str(root), ["de"], 0, 1, Skips())


def test_mmarco_hub_path_downloads_the_upstream_files(tmp_path, monkeypatch):
    import huggingface_hub

    root = fx.write_mmarco(tmp_path, ["en"])
    fetched = []

    def fake_download(repo_id, filename, repo_type=None):
        fetched.append((repo_id, filename, repo_type))
        return str(root / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    units = mmarco_units("", ["en"], 0, 1, Skips())
    assert len(units) == 3
    assert fetched == [(sources.MMARCO_HUB, "data/triples.train.ids.small.tsv", "dataset"),
                       (sources.MMARCO_HUB, "data/google/queries/train/english_queries.train.tsv", "dataset"),
                       (sources.MMARCO_HUB, "data/google/collections/english_collection.tsv", "dataset")]


def test_xquad_romanian_units_use_the_splitter():
    units = xquad_units(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["en", "ro"], [0], seed=1)
    ro = units[units["lang"] == "ro"]
    assert len(ro) == len(units[units["lang"] == "en"]) > 0
    raw = json.loads((SHARED_CORPORA / "xquad" / "xquad.ro.json").read_text())["data"][0]
    answers = {qa["id"]: qa["answers"][0]["text"] for p in raw["paragraphs"] for qa in p["qas"]}
    assert all(answers[q] in pos for q, pos in zip(ro["qid"], ro["positive"]))
    assert (ro["positive"] != ro["negative"]).all() and set(ro["title"]) == {"Super_Bowl_50"}
