import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from hybrid_ir.sampling import (
    Batch,
    BatchStream,
    HybridBatchSampler,
    make_sampler,
    shard,
)

LANGS = ["de", "en", "es", "zh"]
N_QIDS = 200
BS = 16


def _table(qid_langs, pos_of, neg_of):
    """All mono and ordered cross combinations per qid."""
    rows = []
    for q, langs in qid_langs.items():
        for x in langs:
            for y in langs:
                rows.append(
                    dict(
                        qid=q, query_lang=x, passage_lang=y,
                        query=f"{q} query {x}", positive=f"{q} pos {y}", negative=f"{q} neg {y}",
                        positive_id=pos_of[q], negative_id=neg_of[q],
                        kind="mono" if x == y else "cross",
                    )
                )
    return pd.DataFrame(rows)


def synthetic_pairs():
    qids = [f"q{i:03d}" for i in range(N_QIDS)]
    qid_langs = {q: list(LANGS) for q in qids}
    for q in qids[180:198]:  # some qids miss a language
        qid_langs[q] = ["de", "en", "es"]
    qid_langs[qids[198]] = ["en", "zh"]
    qid_langs[qids[199]] = ["en"]  # mono only: unusable for cross batches
    pos_of = {q: f"{q}#pos" for q in qids}
    neg_of = {q: f"{q}#neg" for q in qids}
    for k in range(0, 20, 2):  # pairs of qids sharing a positive sentence
        pos_of[qids[k + 1]] = pos_of[qids[k]]
    for k in range(20, 40, 2):  # one qid's negative is another's positive
        neg_of[qids[k]] = pos_of[qids[k + 1]]
    # rows shuffled so iloc positions are not in qid order
    return _table(qid_langs, pos_of, neg_of).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def pairs():
    return synthetic_pairs()


def _within(count, n, p, sigmas=4.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def _all_batches(sampler, epochs):
    return [b for e in epochs for b in sampler.epoch_batches(e)]


def _check_no_duplicates(pairs, batch):
    sub = pairs.iloc[batch.rows]
    assert sub["qid"].is_unique
    assert sub["positive_id"].is_unique
    assert not set(sub["positive_id"]) & set(sub["negative_id"])


# -- monolingual ---------------------------------------------------------------
def test_mono_batches_one_language_uniform(pairs):
    s = make_sampler("mono", pairs, BS, seed=1)
    assert s.languages == LANGS
    batches = _all_batches(s, range(100))
    counts = Counter()
    for b in batches:
        sub = pairs.iloc[b.rows]
        assert b.kind == "mono"
        assert (sub["query_lang"] == b.language).all()
        assert (sub["passage_lang"] == b.language).all()
        counts[b.language] += 1
    assert set(counts) == set(LANGS)
    for lang in LANGS:
        assert _within(counts[lang], len(batches), 1 / len(LANGS)), counts


# -- cross-lingual -------------------------------------------------------------
def test_cross_per_triplet(pairs):
    s = make_sampler("cross", pairs, BS, seed=2)
    assert s.n_qids == N_QIDS - 1  # the mono-only qid is never used
    n_pairs_per_batch = []
    for b in _all_batches(s, range(10)):
        sub = pairs.iloc[b.rows]
        assert b.kind == "cross" and b.language is None
        assert (sub["query_lang"] != sub["passage_lang"]).all()
        assert (sub["kind"] == "cross").all()
        n_pairs_per_batch.append(len(set(zip(sub["query_lang"], sub["passage_lang"]))))
    # 16 triplets over 12 ordered pairs: ~10 distinct expected
    assert np.mean(n_pairs_per_batch) > 7
    assert min(n_pairs_per_batch) >= 3


def test_cross_per_batch(pairs):
    s = make_sampler("cross", pairs, BS, seed=3, cross_pairing="per_batch")
    seen = Counter()
    for b in _all_batches(s, range(20)):
        sub = pairs.iloc[b.rows]
        assert b.kind == "cross"
        got = set(sub["query_lang"] + "-" + sub["passage_lang"])
        assert got == {b.language}
        x, y = b.language.split("-")
        assert x != y
        seen[b.language] += 1
    assert len(seen) >= 10  # of 12 ordered pairs, over 240 batches


# -- hybrid ----------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_hybrid_share_and_no_mix(pairs, ratio):
    s = make_sampler("hybrid", pairs, BS, seed=4, mono_ratio=ratio)
    batches = _all_batches(s, range(167))
    assert len(batches) >= 2000
    n_mono = 0
    for b in batches:
        sub = pairs.iloc[b.rows]
        same = sub["query_lang"] == sub["passage_lang"]
        if b.kind == "mono":
            n_mono += 1
            assert same.all() and (sub["query_lang"] == b.language).all()
        else:
            assert b.kind == "cross" and not same.any()
    assert _within(n_mono, len(batches), ratio), n_mono / len(batches)


def test_hybrid_extremes_equal_variants(pairs):
    for ratio, variant in [(1.0, "mono"), (0.0, "cross")]:
        h = make_sampler("hybrid", pairs, BS, seed=5, mono_ratio=ratio)
        v = make_sampler(variant, pairs, BS, seed=5)
        for e in range(3):
            hb, vb = h.epoch_batches(e), v.epoch_batches(e)
            assert {b.kind for b in hb} == {variant}
            assert hb == vb


# -- duplicates and epoch coverage ---------------------------------------------------
@pytest.mark.parametrize(
    "variant,pairing",
    [("mono", "per_triplet"), ("cross", "per_triplet"), ("cross", "per_batch"), ("hybrid", "per_triplet")],
)
def test_no_duplicates_and_qids_once_per_epoch(pairs, variant, pairing):
    s = make_sampler(variant, pairs, BS, seed=6, cross_pairing=pairing)
    assert s.batches_per_epoch == s.n_qids // BS
    for e in range(8):
        batches = s.epoch_batches(e)
        assert len(batches) == s.batches_per_epoch
        used = []
        for b in batches:
            assert 0 < len(b) <= BS
            _check_no_duplicates(pairs, b)
            used.extend(pairs.iloc[b.rows]["qid"])
        assert len(used) == len(set(used))  # each qid at most once per epoch
        # only the last batches may come up short
        assert sum(len(b) < BS for b in batches[:-2]) == 0
        assert len(used) >= s.batches_per_epoch * BS - 2 * BS


def test_deferred_qids_are_not_lost():
    # 20 groups of 2 qids sharing a positive; batch of 20 holds one per group,
    # so the second batch is full only if the deferred qids come back
    qids = [f"g{i // 2:02d}_{i % 2}" for i in range(40)]
    pos_of = {q: q.split("_")[0] for q in qids}
    neg_of = {q: f"{q}#neg" for q in qids}
    pairs = _table({q: ["en", "de"] for q in qids}, pos_of, neg_of)
    for variant in ["mono", "cross", "hybrid"]:
        s = make_sampler(variant, pairs, 20, seed=7)
        for e in range(5):
            batches = s.epoch_batches(e)
            assert [len(b) for b in batches] == [20, 20]
            used = np.concatenate([pairs.iloc[b.rows]["qid"].to_numpy() for b in batches])
            assert sorted(used) == sorted(qids)
            for b in batches:
                _check_no_duplicates(pairs, b)


def test_missing_language_only_language_present(pairs):
    s = make_sampler("mono", pairs, BS, seed=8)
    zh_qids = set(pairs.loc[pairs["query_lang"] == "zh", "qid"])
    for b in _all_batches(s, range(10)):
        if b.language == "zh":
            assert set(pairs.iloc[b.rows]["qid"]) <= zh_qids


# -- determinism -------------------------------------------------------------------
def test_determinism(pairs):
    a = make_sampler("hybrid", pairs, BS, seed=9)
    b = make_sampler("hybrid", pairs, BS, seed=9)
    c = make_sampler("hybrid", pairs, BS, seed=10)
    assert a.epoch_batches(3) == b.epoch_batches(3)
    assert a.epoch_batches(3) == a.epoch_batches(3)  # no hidden state
    assert a.epoch_batches(3) != a.epoch_batches(4)
    assert a.epoch_batches(3) != c.epoch_batches(3)


# -- stream and resume ---------------------------------------------------------------
def test_stream_resume_across_epoch_boundary(pairs):
    s = make_sampler("hybrid", pairs, BS, seed=11)
    assert s.batches_per_epoch == 12  # 37 + 20 steps cross the boundary at 48
    full = BatchStream(s)
    for _ in range(37):
        next(full)
    state = full.state_dict()
    assert state == {"step": 37}

    resumed = BatchStream(make_sampler("hybrid", pairs, BS, seed=11))
    resumed.load_state_dict(state)
    started = BatchStream(s, start_step=37)
    expected = [next(full) for _ in range(20)]
    assert [next(resumed) for _ in range(20)] == expected
    assert [next(started) for _ in range(20)] == expected
    assert full.step == resumed.step == 57
    # the stream is the epochs laid end to end
    flat = _all_batches(s, range(5))
    assert expected == flat[37:57]


# -- DDP sharding ---------------------------------------------------------------------
def test_shard(pairs):
    world = 4
    per_rank = [make_sampler("hybrid", pairs, BS, seed=12).epoch_batches(2) for _ in range(world)]
    for step in range(len(per_rank[0])):
        batches = [per_rank[r][step] for r in range(world)]
        assert len({b.kind for b in batches}) == 1
        assert len({b.language for b in batches}) == 1
        if len(batches[0]) % world:
            continue
        parts = [shard(batches[r], r, world) for r in range(world)]
        assert len({len(p) for p in parts}) == 1
        np.testing.assert_array_equal(np.concatenate(parts), batches[0].rows)
    odd = Batch(kind="mono", rows=np.arange(6), language="en")
    with pytest.raises(ValueError, match="world_size"):
        shard(odd, 0, 4)
    with pytest.raises(ValueError, match="rank"):
        shard(odd, 3, 3)


# -- validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=N_QIDS + 1), "batch_size"),
        (dict(mono_ratio=-0.1), "mono_ratio"),
        (dict(mono_ratio=1.5), "mono_ratio"),
        (dict(mono_ratio=float("nan")), "mono_ratio"),
        (dict(cross_pairing="per_query"), "cross_pairing"),
        (dict(seed=-1), "seed"),
    ],
)
def test_validation(pairs, kwargs, name):
    args = dict(batch_size=BS, mono_ratio=0.5, seed=0) | kwargs
    with pytest.raises(ValueError, match=name):
        HybridBatchSampler(pairs, **args)


def test_validation_table_and_variant(pairs):
    with pytest.raises(ValueError, match="positive_id"):
        HybridBatchSampler(pairs.drop(columns="positive_id"), BS, 0.5, 0)
    en_only = pairs[(pairs["query_lang"] == "en") & (pairs["passage_lang"] == "en")]
    with pytest.raises(ValueError, match="mono_ratio"):
        HybridBatchSampler(en_only, BS, 0.5, 0)
    HybridBatchSampler(en_only, BS, 1.0, 0)  # one language is fine for mono
    with pytest.raises(ValueError, match="variant"):
        make_sampler("mixed", pairs, BS, 0)
    with pytest.raises(ValueError, match="epoch"):
        make_sampler("mono", pairs, BS, 0).epoch_batches(-1)
