import dataclasses
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from hybrid_ir import sampling
from hybrid_ir.base_models import build_base_model
from hybrid_ir.encoder import load_encoder
from hybrid_ir.pairs import build_pairs
from hybrid_ir.params import Params
from hybrid_ir.training import freeze, info_nce_loss, train_variant
from tests.helpers import SHARED_CORPORA


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
    return train_variant(root / "base", root / name, pairs, "hybrid", train=tp, sampler=p.sampler,
                         model_params=mp, pooling="mean", checkpoint_dir=root / f"ckpt-{name}", progress=False)


def test_training_changes_trainable_weights_only_and_logs_each_step(tiny):
    root, pairs = tiny
    log = _train(root, pairs, "plain")
    assert list(log["step"]) == list(range(6)) and log["loss"].notna().all()
    assert set(log["kind"]) <= {"mono", "cross"}
    before, after = load_file(root / "base" / "model.safetensors"), load_file(root / "plain" / "model.safetensors")
    assert torch.equal(before["embeddings.word_embeddings.weight"], after["embeddings.word_embeddings.weight"])
    assert not torch.equal(before["encoder.layer.1.output.dense.weight"], after["encoder.layer.1.output.dense.weight"])
    assert not (root / "ckpt-plain").exists()  # checkpoints removed after success


def test_interrupted_run_resumes_to_identical_weights(tiny, monkeypatch):
    root, pairs = tiny
    _train(root, pairs, "reference")
    real_next, calls = sampling.BatchStream.__next__, {"n": 0}

    def crash_on_fifth(self):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill after the step-4 checkpoint")
        return real_next(self)

    monkeypatch.setattr(sampling.BatchStream, "__next__", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        _train(root, pairs, "resumed")
    assert (root / "ckpt-resumed" / "checkpoint.pt").exists() and not (root / "resumed").exists()
    monkeypatch.setattr(sampling.BatchStream, "__next__", real_next)
    log = _train(root, pairs, "resumed")
    assert list(log["step"]) == list(range(6))
    ref, res = load_file(root / "reference" / "model.safetensors"), load_file(root / "resumed" / "model.safetensors")
    assert ref.keys() == res.keys() and all(torch.equal(ref[k], res[k]) for k in ref)
    summary = pd.read_json(root / "resumed" / "train_summary.json", typ="series")
    assert summary["resumed_from_step"] == 4


def test_checkpoint_of_other_params_is_not_resumed(tiny, monkeypatch):
    root, pairs = tiny
    real_next, calls = sampling.BatchStream.__next__, {"n": 0}

    def crash(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_next(self)

    monkeypatch.setattr(sampling.BatchStream, "__next__", crash)
    with pytest.raises(KeyboardInterrupt):
        _train(root, pairs, "changed", lr=1e-4)
    monkeypatch.setattr(sampling.BatchStream, "__next__", real_next)
    _train(root, pairs, "changed", lr=2e-4)
    summary = pd.read_json(root / "changed" / "train_summary.json", typ="series")
    assert summary["resumed_from_step"] == 0
