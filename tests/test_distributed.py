"""The global batch split two ways gives the training of one pass: GradCache chunks and DDP processes.

Both comparisons use a tiny model with dropout disabled (0 in its config): dropout masks depend on how
the batch is split, so with dropout on the runs would differ by design. fp32, so the only differences
left are float rounding (padding per chunk, summation order).
"""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from hybrid_ir import distributed
from hybrid_ir.base_models import build_base_model
from hybrid_ir.model_dir import read_weights
from hybrid_ir.pair_store import PairStore
from tests.helpers import build_pairs
from hybrid_ir.params import as_dict, parse_params
from hybrid_ir.loss import info_nce_loss
from hybrid_ir.training import train_variant
from tests.helpers import REPO, SHARED_CORPORA

TINY_TRAIN = dict(steps=4, batch_size=4, warmup_steps=1, lr=1e-3, freeze_layers=1, precision="fp32", val_questions=8,
                  val_batches=2, eval_every=2, patience=0, checkpoint_every=2)


@pytest.fixture(scope="module")
def no_dropout(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    base = root / "data" / "models" / "base"
    build_base_model("tiny-random", base)
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (base / "config.json").write_text(json.dumps(config))
    pairs = build_pairs(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["de", "en"], [0, 1], seed=0)
    (root / "data" / "pairs").mkdir(parents=True)
    PairStore.from_table(pairs).write(root / "data" / "pairs" / "store")
    return root, pairs


def _params(**train):
    return parse_params({"model": {"source": "tiny-random", "max_length": 32}, "train": {**TINY_TRAIN, **train}})


def _train_in_process(root, pairs, name, params):
    return train_variant(root / "data" / "models" / "base", root / name, pairs, "hybrid", train=params.train,
                         sampler_params=params.sampler, model_params=params.model, pooling="mean",
                         checkpoint_dir=root / f"ckpt-{name}", progress=False)


def _assert_same_weights(a, b):
    wa, wb = read_weights(a), read_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_sharded_loss_with_offsets_equals_the_global_loss():
    torch.manual_seed(0)
    q, pos, neg = (torch.nn.functional.normalize(torch.randn(6, 8), dim=-1) for _ in range(3))
    for form in ("infonce", "paper"):
        whole = info_nce_loss(q, pos, neg, 0.05, form)
        halves = [info_nce_loss(q[i:i + 3], pos, neg, 0.05, form, offset=i) for i in (0, 3)]
        torch.testing.assert_close(whole, sum(halves) / 2)


def test_grad_accumulation_chunks_equal_one_pass(no_dropout):
    root, pairs = no_dropout
    one = _train_in_process(root, pairs, "accum1", _params(grad_accum_steps=1, val_questions=0))
    two = _train_in_process(root, pairs, "accum2", _params(grad_accum_steps=2, val_questions=0))
    assert len(two) == 4  # one log row per optimizer step, not per chunk
    assert list(two["lr"]) == list(one["lr"])  # the schedule counts optimizer steps
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    _assert_same_weights(root / "accum1", root / "accum2")


def test_two_gloo_processes_match_one_process(no_dropout):
    """`stages/train.py hybrid-13` (default seed), train.processes=2: torchrun (gloo on CPU), same curve and weights."""
    root, pairs = no_dropout
    params = _params(processes=2)
    raw = as_dict(params)
    raw["data"]["mirror"] = str(SHARED_CORPORA)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    env.pop("HYBRID_IR_PARAMS", None)
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "train.py"), "hybrid-13"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    two = pd.read_csv(root / "data" / "models" / "hybrid-13" / "train_log.csv")
    one = _train_in_process(root, pairs, "single", _params(processes=1))
    summary = json.loads((root / "data" / "models" / "hybrid-13" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and list(two["step"]) == list(one["step"])
    assert list(two["kind"]) == list(one["kind"]) and list(two["batch_size"]) == list(one["batch_size"])
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-5)  # NaN where not evaluated
    _assert_same_weights(root / "single", root / "data" / "models" / "hybrid-13")
    assert not (root / "data" / "checkpoints" / "hybrid-13").exists()


def test_launch_command_is_torchrun_with_one_worker_per_process():
    cmd = distributed.launch_command(3, "stages/train.py", ["mono"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=3" in cmd
    assert cmd[-2:] == ["stages/train.py", "mono"]
    assert distributed.setup("cpu") == distributed.Context(device="cpu") or distributed.in_worker()


def test_process_count_must_divide_the_batch():
    with pytest.raises(Exception, match="train.processes: batch_size 4 is not divisible by 3"):
        _params(processes=3)
    assert dataclasses.replace(_params().train, processes=2).processes == 2
