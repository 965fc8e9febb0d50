import dataclasses
import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid_ir import sampling
from hybrid_ir.base_models import build_base_model
from hybrid_ir.checkpoints import Checkpointer, EarlyStopping, check_plain
from hybrid_ir.encoder import load_encoder
from hybrid_ir.loss import info_nce_loss
from hybrid_ir.model_dir import read_weights
from hybrid_ir.pair_store import PairStore
from hybrid_ir.params import Params, ParamsError
from hybrid_ir.training import freeze, split_validation, train_variant, validation_batches, validation_loss
from tests.helpers import SHARED_CORPORA, build_pairs


def test_info_nce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    neg = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    t = 0.5
    # row 0 scores: [1, .6, 0, 1] / t, target 0; row 1: [0, .8, 1, 0] / t, target 1
    def ce(scores, target):
        return -scores[target] + math.log(sum(math.exp(s) for s in scores))
    expected = (ce([2.0, 1.2, 0.0, 2.0], 0) + ce([0.0, 1.6, 2.0, 0.0], 1)) / 2
    assert info_nce_loss(q, pos, neg, t).item() == pytest.approx(expected, rel=1e-6)
    # the paper's printed form: the positive is left out of the denominator
    def paper(scores, target):
        return -scores[target] + math.log(sum(math.exp(s) for j, s in enumerate(scores) if j != target))
    expected = (paper([2.0, 1.2, 0.0, 2.0], 0) + paper([0.0, 1.6, 2.0, 0.0], 1)) / 2
    assert info_nce_loss(q, pos, neg, t, form="paper").item() == pytest.approx(expected, rel=1e-6)


def test_early_stopping_keeps_the_best_and_counts_patience():
    stopper = EarlyStopping(patience=2)
    assert [stopper.update(v, step) for step, v in ((5, 3.0), (10, 2.0), (15, 2.5), (20, 2.0))] == [
        False, False, False, True]
    assert (stopper.best_step, stopper.best_loss) == (10, 2.0)
    never = EarlyStopping(patience=0)
    assert not any(never.update(v, i) for i, v in enumerate([1.0, 2.0, 3.0, 4.0]))


def test_validation_questions_are_held_out_whole_and_batches_cover_both_kinds(tiny):
    _, pairs = tiny
    train_rows, val_rows = split_validation(pairs, 10, seed=3)
    assert val_rows["qid"].nunique() == 10 and not set(val_rows["qid"]) & set(train_rows["qid"])
    assert len(train_rows) + len(val_rows) == len(pairs)
    assert split_validation(pairs, 10, seed=3)[1].equals(val_rows)  # fixed by the seed
    batches = validation_batches(PairStore.from_table(val_rows), 4, 3, seed=3, cross_pairing="per_triplet")
    assert [b.kind for b in batches] == ["mono", "cross", "mono"]
    with pytest.raises(ParamsError, match="train.val_questions"):
        split_validation(pairs, pairs["qid"].nunique(), seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    build_base_model("tiny-random", root / "base")
    pairs = build_pairs(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["de", "en"], [0], seed=0)
    return root, pairs


def test_freeze_leaves_only_upper_layers_trainable(tiny):
    root, _ = tiny
    model, _ = load_encoder(root / "base")
    n = freeze(model, embeddings=True, layers=1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("encoder.layer.1.") for name in trainable)
    assert n == sum(p.numel() for p in model.encoder.layer[1].parameters())
    with pytest.raises(ValueError, match="freeze_layers: the model has only 2 layers"):
        freeze(model, embeddings=True, layers=3)


def _train(root, pairs, name, **overrides):
    p = Params()
    tp = dataclasses.replace(p.train, steps=6, batch_size=4, warmup_steps=1, freeze_layers=1,
                             checkpoint_every=2, **overrides)
    mp = dataclasses.replace(p.model, max_length=32)
    return train_variant(root / "base", root / name, pairs, "hybrid", train=tp, sampler_params=p.sampler,
                         model_params=mp, pooling="mean", checkpoint_dir=root / f"ckpt-{name}",
                         run_log=root / f"{name}-run.json", progress=False)


def test_training_changes_trainable_weights_only_and_logs_each_step(tiny):
    root, pairs = tiny
    log = _train(root, pairs, "plain")
    assert list(log["step"]) == list(range(6)) and log["loss"].notna().all()
    assert set(log["kind"]) <= {"mono", "cross"}
    before, after = read_weights(root / "base"), read_weights(root / "plain")
    assert torch.equal(before["embeddings.word_embeddings.weight"], after["embeddings.word_embeddings.weight"])
    assert not torch.equal(before["encoder.layer.1.output.dense.weight"], after["encoder.layer.1.output.dense.weight"])
    assert not (root / "ckpt-plain").exists()  # checkpoints removed after success
    # freeze_layers 1: the shards of the embeddings and layer 0 are the base model's, byte for byte
    shards = sorted(p.name for p in (root / "base").glob("model-*.safetensors"))
    assert shards == sorted(p.name for p in (root / "plain").glob("model-*.safetensors")) and len(shards) == 3
    same = [(root / "plain" / s).read_bytes() == (root / "base" / s).read_bytes() for s in shards]
    assert same == [True, True, False]
    assert (root / "plain" / "tokenizer.json").read_bytes() == (root / "base" / "tokenizer.json").read_bytes()
    card = (root / "plain" / "README.md").read_text()
    summary = pd.read_json(root / "plain" / "train_summary.json", typ="series")
    assert "# hybrid:" in card and f"{summary['steps_run']} run" in card and "`sampler.mono_ratio` = 0.5" in card
    assert f"step {summary['best_step']}, validation loss" in card and "reports/metrics/hybrid.json" in card
    prompts = json.loads((root / "plain" / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    assert json.loads((root / "plain" / "sentence_bert_config.json").read_text())["max_seq_length"] == 32


def _kill_at_batch(monkeypatch, n: int):
    """Make drawing the n-th batch raise KeyboardInterrupt, as a killed run; returns the undo."""
    real_next, calls = sampling.BatchStream.__next__, {"n": 0}

    def crash(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt(f"simulated kill at batch {n}")
        return real_next(self)

    monkeypatch.setattr(sampling.BatchStream, "__next__", crash)
    return lambda: monkeypatch.setattr(sampling.BatchStream, "__next__", real_next)


def test_interrupted_run_resumes_to_identical_weights(tiny, monkeypatch):
    root, pairs = tiny
    # validation at every step; a large lr puts the best step before the step-4 checkpoint, so the
    # early-stopping state (best weights) has to go through the checkpoint
    early = dict(lr=5e-2, val_questions=10, val_batches=2, eval_every=1, patience=0)
    reference = _train(root, pairs, "reference", **early)
    undo = _kill_at_batch(monkeypatch, 5)  # after the step-4 checkpoint
    with pytest.raises(KeyboardInterrupt):
        _train(root, pairs, "resumed", **early)
    assert (root / "ckpt-resumed" / "checkpoint.pt").exists() and not (root / "resumed").exists()
    undo()
    log = _train(root, pairs, "resumed", **early)
    assert list(log["step"]) == list(range(6))
    assert log[["loss", "val_loss"]].equals(reference[["loss", "val_loss"]])
    ref, res = read_weights(root / "reference"), read_weights(root / "resumed")
    assert ref.keys() == res.keys() and all(torch.equal(ref[k], res[k]) for k in ref)
    summary = pd.read_json(root / "resumed" / "train_summary.json", typ="series")
    assert json.loads((root / "resumed-run.json").read_text())["resumed_from_step"] == 4
    # the model directory is a function of the inputs: the resumed run wrote the same bytes, file for file
    files = sorted(str(p.relative_to(root / "reference")) for p in (root / "reference").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(root / "resumed")) for p in (root / "resumed").rglob("*") if p.is_file())
    assert "train_log.csv" in files
    assert all((root / "reference" / f).read_bytes() == (root / "resumed" / f).read_bytes() for f in files)
    ref_summary = pd.read_json(root / "reference" / "train_summary.json", typ="series")
    assert (summary["best_step"], summary["best_val_loss"]) == (ref_summary["best_step"], ref_summary["best_val_loss"])
    assert ref_summary["best_step"] < 4, "precondition: the best weights predate the checkpoint"


def test_checkpoint_of_other_params_is_not_resumed(tiny, monkeypatch):
    root, pairs = tiny
    undo = _kill_at_batch(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        _train(root, pairs, "changed", lr=1e-4)
    undo()
    _train(root, pairs, "changed", lr=2e-4)
    assert json.loads((root / "changed-run.json").read_text())["resumed_from_step"] == 0


def test_checkpoint_loads_with_weights_only(tiny, monkeypatch):
    root, pairs = tiny
    _kill_at_batch(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        _train(root, pairs, "plain-ckpt", val_questions=10, val_batches=2, eval_every=1)
    state = torch.load(root / "ckpt-plain-ckpt" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and state["stream"] == {"step": 4}
    assert state["early_stopping"]["weights"].keys() == state["weights"].keys()
    assert isinstance(state["rng"][0]["cpu"], torch.Tensor) and state["optimizer"]["state"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling it creates `marker`: code run by whoever wrote the file
        return (pathlib.Path.touch, (self.marker,))


def test_a_checkpoint_holding_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    ckpt = Checkpointer(tmp_path / "ckpt", "k")
    ckpt.dir.mkdir()
    torch.save({"key": "k", "step": 4, "weights": _Payload(marker)}, ckpt.file)
    torch.load(ckpt.file, weights_only=False)
    assert marker.exists(), "precondition: a plain unpickle of the file runs the payload"
    marker.unlink()
    with pytest.raises(RuntimeError, match="holds more than tensors and plain containers: not unpickling"):
        ckpt.load(None, None, None, None, scaler=None, stopper=None)
    assert not marker.exists()


def test_saving_a_non_plain_value_fails_before_writing():
    check_plain({"weights": {"w": torch.zeros(2)}, "rng": [{"cpu": torch.zeros(3, dtype=torch.uint8)}],
                 "best_loss": math.inf, "best_step": None, "betas": (0.9, 0.999)})
    with pytest.raises(TypeError, match=r"checkpoint\['early_stopping'\]\['best_loss'\] is a numpy.float64"):
        check_plain({"early_stopping": {"best_loss": np.float64(0.5)}})


def test_early_stopping_saves_the_best_validation_step(tiny):
    root, pairs = tiny
    log = _train(root, pairs, "early", lr=1e-3, val_questions=10, val_batches=2, eval_every=1, patience=2)
    summary = pd.read_json(root / "early" / "train_summary.json", typ="series")
    evaluated = log.dropna(subset=["val_loss"])
    assert len(evaluated) == len(log)  # eval_every=1
    best = evaluated["val_loss"].idxmin()
    assert summary["best_step"] == log.loc[best, "step"] + 1
    assert summary["best_val_loss"] == pytest.approx(evaluated["val_loss"].min())
    # stopped after `patience` evaluations without a new best, or ran every step
    assert len(log) == 6 or (summary["stopped_early"] and len(log) - summary["best_step"] == 2)
    # the weights written are the best step's: they give back the best validation loss
    p = Params()
    tp = dataclasses.replace(p.train, val_questions=10, val_batches=2, precision=summary["precision"])  # as resolved
    mp = dataclasses.replace(p.model, max_length=32)
    _, val = split_validation(PairStore.from_table(pairs), 10, tp.seed)
    model, tokenizer = load_encoder(root / "early")
    batches = validation_batches(val, 4, 2, tp.seed, p.sampler.cross_pairing)
    again = validation_loss(model, tokenizer, val, batches, train=tp, model_params=mp, pooling="mean", device="cpu")
    assert again == pytest.approx(summary["best_val_loss"], rel=1e-6)


@pytest.mark.parametrize("ratio,variant", [(0.0, "cross"), (1.0, "mono")])
def test_hybrid_at_the_extremes_trains_the_baselines_weights(tiny, ratio, variant):
    """alpha = 0 and 1 of the sweep are the X-Y and X-X-mono runs: same batches, same weights, bit for bit."""
    from hybrid_ir.model_dir import read_weights

    root, pairs = tiny
    p = Params()
    tp = dataclasses.replace(p.train, steps=4, batch_size=4, warmup_steps=1, freeze_layers=1, checkpoint_every=2)
    mp = dataclasses.replace(p.model, max_length=32)
    common = dict(train=tp, model_params=mp, pooling="mean", progress=False)
    train_variant(root / "base", root / f"a{ratio}", pairs, "hybrid", checkpoint_dir=root / f"ck-a{ratio}",
                  sampler_params=dataclasses.replace(p.sampler, mono_ratio=ratio), **common)
    train_variant(root / "base", root / f"v-{variant}", pairs, variant, checkpoint_dir=root / f"ck-{variant}",
                  sampler_params=p.sampler, **common)
    hybrid, baseline = read_weights(root / f"a{ratio}"), read_weights(root / f"v-{variant}")
    assert hybrid.keys() == baseline.keys() and all(torch.equal(hybrid[k], baseline[k]) for k in hybrid)
    assert pd.read_csv(root / f"a{ratio}" / "train_log.csv")["kind"].eq(variant).all()
