"""hybrid_ir.pair_index: virtual pair rows, and the sampler on them drawing the materialized sampler's batches."""
import numpy as np
import pandas as pd
import pytest

from hybrid_ir.pair_index import PairIndex
from hybrid_ir.sampling import BatchStream, HybridBatchSampler, make_sampler
from tests.helpers import SHARED_CORPORA, build_pairs
from tests.sampler_oracle import MaterializedSampler
from tests.test_sampling import _table, synthetic_pairs


def random_pairs(seed: int, n_qids: int = 120, langs=("ar", "de", "en", "es", "th")) -> pd.DataFrame:
    """Each qid in 1 to 5 languages; shared positives and negative-positive clashes on purpose; rows shuffled."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i:04d}" for i in rng.permutation(n_qids)]
    qid_langs = {q: sorted(rng.choice(langs, rng.integers(1, len(langs) + 1), replace=False)) for q in qids}
    pos_of = {q: f"p{rng.integers(n_qids // 2)}" for q in qids}
    neg_of = {q: f"p{rng.integers(n_qids)}" for q in qids}
    return _table(qid_langs, pos_of, neg_of).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def assert_same_batches(pairs, variant, batch_size, seed, pairing, epochs=(0, 1, 2), mono_ratio=0.4):
    ratio = {"mono": 1.0, "cross": 0.0, "hybrid": mono_ratio}[variant]
    oracle = MaterializedSampler(pairs, batch_size, ratio, seed, cross_pairing=pairing)
    sampler = make_sampler(variant, pairs, batch_size, seed, mono_ratio, pairing)
    assert sampler.batches_per_epoch == oracle.batches_per_epoch
    for epoch in epochs:
        assert sampler.epoch_batches(epoch) == oracle.epoch_batches(epoch)


@pytest.mark.parametrize("variant", ["mono", "cross", "hybrid"])
@pytest.mark.parametrize("pairing", ["per_triplet", "per_batch"])
def test_sampler_draws_the_materialized_samplers_batches(variant, pairing):
    assert_same_batches(synthetic_pairs(), variant, 16, 3, pairing)
    for seed in range(3):
        assert_same_batches(random_pairs(seed), variant, 8, seed, pairing)


def test_same_batches_on_real_xquad_pairs():
    pairs = build_pairs(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["de", "en", "es", "zh"], [0, 1, 2],
                        seed=13)
    for variant in ("mono", "cross", "hybrid"):
        assert_same_batches(pairs, variant, 16, 13, "per_triplet", epochs=(0, 3))


def test_from_units_equals_the_sorted_table():
    table = random_pairs(5).sort_values(["qid", "query_lang", "passage_lang"], ignore_index=True)
    mono = table[table["query_lang"] == table["passage_lang"]]
    units = PairIndex.from_units(mono["qid"], mono["passage_lang"], mono["positive_id"], mono["negative_id"])
    from_table = PairIndex.from_pair_table(table)
    assert from_table.positions is None and units.n_rows == len(table)
    np.testing.assert_array_equal(units.mask, from_table.mask)
    q = pd.Index(units.qids).get_indexer(table["qid"])
    lang = pd.Index(units.languages)
    rows = units.rows(q, lang.get_indexer(table["query_lang"]), lang.get_indexer(table["passage_lang"]))
    np.testing.assert_array_equal(rows, np.arange(len(table)))  # row r of the table is virtual row r
    unit = units.units(q, lang.get_indexer(table["passage_lang"]))
    assert (units.id_values[units.pos[unit]] == table["positive_id"]).all()
    assert (units.id_values[units.neg[unit]] == table["negative_id"]).all()
    # one question by hand: its languages, its pairs, a row it lacks
    i = int(np.flatnonzero(units.k == 3)[0])
    langs = [li for li in range(len(units.languages)) if units.mask[i] >> li & 1]
    n = len(units.languages)
    assert units.cross_pairs(i) == sorted(x * n + y for x in langs for y in langs if x != y)
    missing = next(li for li in range(n) if li not in langs)
    assert units.row(i, langs[0], missing) == -1
    assert units.row(i, langs[1], langs[2]) == int(units.row_offset[i]) + 1 * 3 + 2


def test_counts_against_the_bits():
    index = PairIndex.from_pair_table(random_pairs(6))
    qids = np.arange(0, len(index.qids), 3)
    mono, pair, cross_any, mono_any = index.counts(qids, chunk=7)
    bits = index.bits(qids).astype(int)
    n = len(index.languages)
    expected = np.array([[(bits[:, x] & bits[:, y]).sum() if x != y else 0 for y in range(n)] for x in range(n)])
    np.testing.assert_array_equal(mono, bits.sum(axis=0))
    np.testing.assert_array_equal(pair, expected.reshape(-1))
    assert cross_any == int((bits.sum(axis=1) >= 2).sum()) and mono_any == len(qids)


def test_sampler_takes_an_index_built_from_units():
    table = random_pairs(7).sort_values(["qid", "query_lang", "passage_lang"], ignore_index=True)
    mono = table[table["query_lang"] == table["passage_lang"]]
    index = PairIndex.from_units(mono["qid"], mono["passage_lang"], mono["positive_id"], mono["negative_id"])
    a = BatchStream(HybridBatchSampler(index, 8, 0.5, 2))
    b = BatchStream(HybridBatchSampler(table, 8, 0.5, 2))
    assert [next(a) for _ in range(40)] == [next(b) for _ in range(40)]


def test_tables_the_index_cannot_hold():
    table = random_pairs(8)
    cross = table.index[table["query_lang"] != table["passage_lang"]]
    with pytest.raises(ValueError, match="once"):
        PairIndex.from_pair_table(table.drop(index=cross[:1]))  # one combination missing
    with pytest.raises(ValueError, match="once"):
        PairIndex.from_pair_table(pd.concat([table, table.iloc[cross[:1]]]))  # a duplicate row
    clash = table.copy()
    clash.loc[cross[0], "negative_id"] = "elsewhere"
    with pytest.raises(ValueError, match="negative_id"):
        PairIndex.from_pair_table(clash)
    with pytest.raises(ValueError, match="duplicate"):
        PairIndex.from_units(["a", "a"], ["en", "en"], ["p", "p"], ["n", "n"])
