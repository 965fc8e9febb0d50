"""The pair store: each text once, the pair table composed from units, the same batches and texts."""
import numpy as np
import pandas as pd
import pytest

from hybrid_ir.pair_store import TABLE_COLUMNS, PairStore
from hybrid_ir.sampling import BatchStream, make_sampler
from hybrid_ir.sources import xquad_units
from hybrid_ir.training import split_validation
from tests.helpers import SHARED_CORPORA

LANGS = ["de", "en", "zh"]


def merged_table(units: pd.DataFrame, languages) -> pd.DataFrame:
    """Oracle: the table as the pairs stage materialized it before the store (a merge on qid)."""
    units = units[units["lang"].isin(set(languages))]
    query_side = units[["qid", "article", "lang", "query", "source", "title"]].rename(columns={"lang": "query_lang"})
    passage_side = units[["qid", "lang", "positive", "negative", "positive_id", "negative_id"]].rename(
        columns={"lang": "passage_lang"})
    table = query_side.merge(passage_side, on="qid")
    table = table.sort_values(["qid", "query_lang", "passage_lang"], kind="stable", ignore_index=True)
    table["kind"] = np.where(table["query_lang"] == table["passage_lang"], "mono", "cross")
    table["article"] = table["article"].astype("int64")
    return table[TABLE_COLUMNS]


def uneven_units() -> pd.DataFrame:
    """Two sources; questions with one, two or three languages; a passage shared by two questions."""
    rows = []
    for i, langs in enumerate([["en"], ["de", "en"], ["de", "en", "zh"], ["zh", "en"], ["de", "zh", "en"]]):
        for lang in langs:
            rows.append({"source": "a" if i % 2 else "b", "qid": f"q{i}", "title": f"T{i % 2}", "article": i % 2,
                         "lang": lang, "query": f"query {i} {lang}", "positive": f"passage {i // 2} {lang}",
                         "negative": f"other {i} {lang}", "positive_id": f"p{i // 2}", "negative_id": f"n{i}"})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # any order


@pytest.fixture(scope="module")
def xquad():
    return xquad_units(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", LANGS, [0, 5], seed=1)


@pytest.mark.parametrize("case", ["xquad", "uneven"])
def test_the_store_composes_the_materialized_table(case, xquad):
    units = xquad if case == "xquad" else uneven_units()
    expected = merged_table(units, LANGS)
    store = PairStore.from_units(units, LANGS)
    pd.testing.assert_frame_equal(store.table(), expected)
    assert store.n_rows == len(expected) and store.n_questions == expected["qid"].nunique()
    rows = np.random.default_rng(0).permutation(len(expected))[:7]
    queries, positives, negatives = store.texts_of(rows)
    assert queries == list(expected["query"].iloc[rows]) and positives == list(expected["positive"].iloc[rows])
    assert negatives == list(expected["negative"].iloc[rows])


def test_each_text_is_stored_once_and_the_files_round_trip(tmp_path, xquad):
    store = PairStore.from_units(xquad, LANGS)
    for lang in LANGS:
        mine = xquad[xquad["lang"] == lang]
        distinct = set(mine["query"]) | set(mine["positive"]) | set(mine["negative"])
        assert sorted(store.texts[lang].to_pylist()) == sorted(distinct)
    # units are (question, language): k per question, while the table has k x k rows
    assert len(store.units) == len(xquad) and store.n_rows == len(xquad) * len(LANGS)
    store.write(tmp_path / "a")
    store.write(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert [str(f) for f in files] == ["questions.parquet", "texts/de.parquet", "texts/en.parquet",
                                       "texts/zh.parquet", "units.parquet"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    again = PairStore.read(tmp_path / "a")
    pd.testing.assert_frame_equal(again.table(), store.table())
    assert again.fingerprint() == store.fingerprint()
    with pytest.raises(FileNotFoundError, match="run the pairs stage"):
        PairStore.read(tmp_path / "missing")


def test_counts_equal_a_count_of_the_table():
    units = uneven_units()
    table = merged_table(units, LANGS)
    counts = PairStore.from_units(units, LANGS).counts()
    by_pair = table.groupby(["query_lang", "passage_lang"]).size()
    assert counts == {
        "rows": len(table), "question_ids": table["qid"].nunique(), "mono": int((table["kind"] == "mono").sum()),
        "cross": int((table["kind"] == "cross").sum()),
        "per_source": {s: int(n) for s, n in table.groupby("source").size().items()},
        "per_pair": {f"{q}-{p}": int(n) for (q, p), n in by_pair.items()},
    }
    assert list(counts["per_pair"]) == [f"{q}-{p}" for q, p in by_pair.index]  # the same key order


@pytest.mark.parametrize("variant", ["mono", "cross", "hybrid"])
def test_training_draws_the_same_batches_and_texts_from_the_store_as_from_the_table(variant, xquad):
    table = merged_table(xquad, LANGS)
    store = PairStore.from_units(xquad, LANGS)
    train_table, val_table = split_validation(table, 5, seed=2)
    train_store, val_store = split_validation(store, 5, seed=2)
    pd.testing.assert_frame_equal(val_store.table(), val_table)
    from_table = BatchStream(make_sampler(variant, train_table, 4, seed=7, mono_ratio=0.5))
    from_store = BatchStream(make_sampler(variant, train_store.index, 4, seed=7, mono_ratio=0.5))
    for _ in range(12):
        a, b = next(from_table), next(from_store)
        assert a == b
        expected = tuple(list(train_table[c].to_numpy()[a.rows]) for c in ("query", "positive", "negative"))
        assert train_store.texts_of(b.rows) == expected


def test_a_table_that_is_not_every_combination_is_refused():
    table = merged_table(uneven_units(), LANGS)
    assert PairStore.from_table(table.sample(frac=1.0, random_state=1)).n_rows == len(table)  # any row order
    cross = table.index[table["kind"] == "cross"]
    with pytest.raises(ValueError, match="each \\(qid, query_lang, passage_lang\\)"):
        PairStore.from_table(table.drop(index=cross[:1]))
    changed = table.copy()
    changed.loc[cross[0], "positive"] = "not the passage-language unit's positive"
    with pytest.raises(ValueError, match="passage-language passages"):
        PairStore.from_table(changed)
    clash = uneven_units()
    clash.loc[clash["qid"] == "q2", "title"] = ["x", "y", "z"]
    with pytest.raises(ValueError, match="disagree on title"):
        PairStore.from_units(clash)
