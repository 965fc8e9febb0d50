"""hybrid_ir.st_sampler: the pipeline's batches inside sentence-transformers' trainer, one and two processes,
and the worked example (examples/train_sentence_transformers.py) end to end on the tiny model."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from accelerate.data_loader import BatchSamplerShard, DataLoaderShard, skip_first_batches

from hybrid_ir.distributed import Context
from hybrid_ir.evalsets import load_pool, sample_question_ids
from hybrid_ir.pair_store import PairStore
from hybrid_ir.params import as_dict, parse_params
from hybrid_ir.sampling import BatchStream, make_sampler
from hybrid_ir.st_sampler import TEXT_COLUMNS, HybridSTBatchSampler, make_batch_sampler, pairs_dataset
from hybrid_ir.training import local_rows, split_validation
from tests.helpers import REPO, SHARED_CORPORA, build_pairs
from tests.test_sampling import synthetic_pairs

ENV = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")


@pytest.fixture(scope="module")
def pairs():
    return synthetic_pairs()


@pytest.fixture(scope="module")
def dataset(pairs):
    return pairs_dataset(pairs)


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    return tiny_model_dir


def _rows(batches):
    return [b.rows.tolist() for b in batches]


@pytest.mark.parametrize("variant,pairing", [("mono", "per_triplet"), ("cross", "per_triplet"),
                                             ("cross", "per_batch"), ("hybrid", "per_triplet"),
                                             ("hybrid", "per_batch")])
def test_batches_are_the_pipeline_samplers_over_seeds_and_epochs(pairs, dataset, variant, pairing):
    for seed in (0, 5, 13):
        sampler = make_batch_sampler(pairs, variant, seed=seed, mono_ratio=0.3, cross_pairing=pairing)(
            dataset, batch_size=16, drop_last=False, valid_label_columns=["label"], generator=None, seed=0)
        stream = BatchStream(make_sampler(variant, pairs, 16, seed, 0.3, pairing))
        n = stream.sampler.batches_per_epoch
        assert len(sampler) == n
        for epoch in (0, 1, 2):
            sampler.set_epoch(epoch)
            got = list(sampler)
            assert got == _rows(stream.sampler.epoch_batches(epoch))  # the trainer's seed 0 is not used
            assert got == [next(stream).rows.tolist() for _ in range(n)]  # the train stage's steps, in order
        assert _rows(sampler.global_batches(0)) != _rows(sampler.global_batches(1))


def test_dataset_holds_the_texts_in_row_order_and_no_metadata(pairs, dataset):
    assert dataset.column_names == list(TEXT_COLUMNS)
    assert dataset[17] == {c: pairs.at[17, c] for c in TEXT_COLUMNS}
    factory = make_batch_sampler(pairs, "hybrid", seed=1)
    with pytest.raises(ValueError, match="rows, the pair table"):
        factory(dataset.select(range(10)), 16)
    with pytest.raises(ValueError, match=r"metadata columns \['qid'\]"):
        factory(dataset.add_column("qid", pairs["qid"].tolist()), 16)
    with pytest.raises(ValueError, match="not the pair table's, row for row"):
        factory(pairs_dataset(pairs.iloc[::-1].reset_index(drop=True)), 16)
    with pytest.raises(ValueError, match="variant must be one of"):
        make_batch_sampler(pairs, "multi", seed=1)
    again = pickle.loads(pickle.dumps(factory))  # the trainer pickles its arguments into checkpoints
    assert list(again(dataset, 16)) == list(factory(dataset, 16))


def _trainer(model_dir, pairs, batch_sampler, batch_size):
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(model_dir), max_seq_length=16, model_kwargs={"add_pooling_layer": False},
                              processor_kwargs={"fix_mistral_regex": False})
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(model_dir.parent / "trainer"), per_device_train_batch_size=batch_size, use_cpu=True,
        batch_sampler=batch_sampler, prompts={"query": "query: ", "positive": "passage: ", "negative": "passage: "},
        report_to="none", dataloader_pin_memory=False)
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs_dataset(pairs),
                                      loss=MultipleNegativesRankingLoss(model))


def test_the_trainers_dataloader_draws_the_pipeline_batches_and_tokenizes_only_texts(tiny_dir, pairs):
    loader = _trainer(tiny_dir, pairs, make_batch_sampler(pairs, "hybrid", seed=4), 16).get_train_dataloader()
    ref = make_sampler("hybrid", pairs, 16, 4)
    assert isinstance(loader.batch_sampler, HybridSTBatchSampler) and len(loader) == ref.batches_per_epoch
    for epoch in (1, 2):
        loader.set_epoch(epoch)  # what the trainer calls at each epoch
        assert list(loader.batch_sampler) == _rows(ref.epoch_batches(epoch))
    # resuming mid-epoch: the trainer sets the epoch, then skips the steps done
    loader.set_epoch(1)
    skipped = skip_first_batches(loader, 3)
    assert list(skipped.batch_sampler) == _rows(ref.epoch_batches(1))[3:]
    batch = next(iter(skipped))
    tokenized = {k for k in batch if k.endswith("_input_ids")}
    assert tokenized == {f"{c}_input_ids" for c in TEXT_COLUMNS}  # nothing but the three text columns
    first = ref.epoch_batches(1)[3]
    assert len(batch["query_input_ids"]) == len(first.rows)


@pytest.mark.parametrize("drop_last,even_batches", [(False, False), (True, True)])
def test_each_process_takes_its_shard_of_one_global_batch_under_accelerate(pairs, dataset, drop_last, even_batches):
    """accelerate's BatchSamplerShard (no split_batches, the trainer's default) hands batch k to process
    k mod 2: every step's two shards are the halves of one pipeline batch, short batches included, whatever
    `dataloader_drop_last` says (the trainer's even_batches is False)."""
    world, per_process, seed = 2, 9, 0
    factory = make_batch_sampler(pairs, "hybrid", seed=seed, cross_pairing="per_batch", world_size=world)
    ref = make_sampler("hybrid", pairs, per_process * world, seed, cross_pairing="per_batch")
    loaders = [DataLoaderShard(dataset, batch_sampler=BatchSamplerShard(
        factory(dataset, per_process, drop_last), num_processes=world, process_index=r, split_batches=False,
        even_batches=even_batches)) for r in range(world)]
    lengths = []
    for epoch in (0, 1):
        got = []
        for loader in loaders:
            loader.set_epoch(epoch)  # reaches the hybrid sampler through accelerate's wrapper
            got.append(list(loader.batch_sampler))
        expected = ref.epoch_batches(epoch)
        assert len(loaders[0]) == len(got[0]) == len(got[1]) == len(expected)
        for step, batch in enumerate(expected):
            for r in range(world):
                assert got[r][step] == local_rows(batch, Context(rank=r, world_size=world)).tolist()
            assert sorted(got[0][step] + got[1][step]) == sorted(batch.rows[: len(batch) // 2 * 2].tolist())
            lengths.append(len(batch))
    assert min(lengths) < per_process * world and any(n % 2 for n in lengths)  # short and odd batches seen


def _small_pairs(n_qids=12, langs=("de", "en", "es", "zh")):
    rows = [dict(qid=f"q{i:02d}", query_lang=x, passage_lang=y, query=f"q{i:02d} query {x}",
                 positive=f"q{i:02d} pos {y}", negative=f"q{i:02d} neg {y}", positive_id=f"q{i:02d}#p",
                 negative_id=f"q{i:02d}#n", kind="mono" if x == y else "cross")
            for i in range(n_qids) for x in langs for y in langs]
    return pd.DataFrame(rows)


def test_two_gloo_processes_see_one_kind_and_language_per_step(tiny_dir, tmp_path):
    """SentenceTransformerTrainer under torchrun (2 processes, gloo): each step, the two ranks' batches are
    the two shards of one pipeline batch, so one kind and (mono, per_batch cross) one language pair."""
    pairs = _small_pairs()
    pairs.to_parquet(tmp_path / "pairs.parquet", index=False)
    steps, per_device, seed = 5, 2, 1
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(REPO / "tests" / "st_ddp_worker.py"), str(tiny_dir), str(tmp_path / "pairs.parquet"), str(tmp_path),
         str(steps), str(per_device), str(seed)],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [s["world_size"] for s in seen] == [2, 2]
    stream = BatchStream(make_sampler("hybrid", pairs, per_device * 2, seed, cross_pairing="per_batch"))
    assert steps > stream.sampler.batches_per_epoch  # the run crosses an epoch boundary
    kinds = set()
    for step in range(steps):
        batch = next(stream)
        table = pairs.iloc[batch.rows]
        for r in range(2):
            rows = table.iloc[r * per_device:(r + 1) * per_device]
            assert seen[r]["batches"][step] == rows[list(TEXT_COLUMNS)].values.tolist(), (step, r)
        assert table["kind"].nunique() == 1 and table["kind"].iloc[0] == batch.kind
        assert (table["query_lang"] + "-" + table["passage_lang"]).nunique() == 1  # per_batch cross too
        kinds.add(batch.kind)
    assert kinds == {"mono", "cross"}


@pytest.fixture(scope="module")
def example_data(tiny_dir, tmp_path_factory):
    """data/ as `dvc repro eval_sets` leaves it, in miniature: pairs, the tiny base model, two eval pools."""
    root = tmp_path_factory.mktemp("example")
    data = root / "data"
    (data / "pairs").mkdir(parents=True)
    PairStore.from_table(build_pairs(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["de", "en"], [0, 1],
                                     seed=0)).write(data / "pairs" / "store")
    (data / "models").mkdir()
    (data / "models" / "base").symlink_to(tiny_dir)
    mlqa_qids = sample_question_ids(SHARED_CORPORA / "mlqa-r", ["de", "en"], 10, 0)
    pools = {"xquad_r": load_pool(SHARED_CORPORA / "xquad-r", ["de", "en"], articles={2}),
             "mlqa_r": load_pool(SHARED_CORPORA / "mlqa-r", ["de", "en"], qids=mlqa_qids)}
    for name, (queries, candidates) in pools.items():
        (data / "eval" / name).mkdir(parents=True)
        queries.to_parquet(data / "eval" / name / "queries.parquet", index=False)
        candidates.to_parquet(data / "eval" / name / "candidates.parquet", index=False)
    params = parse_params({
        "model": {"source": "tiny-random", "max_length": 32},
        "train": dict(steps=3, batch_size=4, warmup_steps=1, lr=1e-3, freeze_layers=1, precision="fp32",
                      val_questions=8),
        "sampler": {"mono_ratio": 0.5, "cross_pairing": "per_batch"},
        "encode": {"precision": "fp32"},
    })
    (root / "params.yaml").write_text(yaml.safe_dump(as_dict(params), sort_keys=False))
    return root, params


def test_worked_example_trains_and_evaluates_on_the_tiny_model(example_data):
    from hybrid_ir.model_dir import read_weights
    from sentence_transformers import SentenceTransformer

    from hybrid_ir.encoder import encode, load_encoder

    root, params = example_data
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "train_sentence_transformers.py"), "--steps", "3"],
                          cwd=root, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = root / "data" / "examples" / "st_hybrid"
    # the steps drew the train stage's batches: its training rows (validation questions held out), its sampler
    pairs = PairStore.read(root / "data" / "pairs" / "store").table()
    train_pairs, _ = split_validation(pairs, params.train.val_questions, params.train.seed)
    stream = BatchStream(make_sampler("hybrid", train_pairs, 4, params.train.seed, 0.5, "per_batch"))
    log = pd.read_csv(out / "train_log.csv", keep_default_na=False)
    expected = [next(stream) for _ in range(3)]
    assert list(log["kind"]) == [b.kind for b in expected]
    assert list(log["language"]) == [b.language or "" for b in expected]
    assert np.isfinite(log["loss"]).all() and (log["loss"] > 0).all()
    # the evaluate stage's metrics, in range, on both pools
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"xquad_r", "mlqa_r"}
    for m in metrics.values():
        assert all(0 < m["map"][s] <= 1 for s in ("mono", "cross", "multi"))
        assert m["n_queries"]["mono"] > 0 and m["rank_distance"] >= 0
    # trained (not the base weights), read by the pipeline's encoder and by sentence-transformers alike
    trained, base = read_weights(out / "model"), read_weights(root / "data" / "models" / "base")  # sharded or not
    assert not all(np.array_equal(trained[k].numpy(), base[k].numpy()) for k in base)
    model, tokenizer = load_encoder(out / "model")
    texts = ["Wer schrieb das Buch?", "Who wrote the book in 1850?"]
    ours = encode(model, tokenizer, texts, prefix="query: ", pooling="mean", max_length=32, progress=False)
    st = SentenceTransformer(str(out / "model"), device="cpu").encode(texts, prompt="query: ")
    np.testing.assert_allclose(st, ours, atol=1e-5)
