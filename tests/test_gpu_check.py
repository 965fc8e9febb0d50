"""bench/gpu_check.py on the CPU: the refusal without CUDA, the comparisons, the report, and the short
train / encode / evaluate it runs on both devices (here twice on the CPU, with the tiny model)."""
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import SHARED_CORPORA, build_pairs

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_the_script_refuses_without_cuda(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    got = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--out", str(out)], env=env, check=False,
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == gpu_check.EXIT_NO_CUDA == 3
    assert "gpu_check: no CUDA device" in got.stderr and "nothing was run" in got.stderr
    assert not out.exists()


def test_main_refuses_before_loading_anything(monkeypatch, capsys, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "benchmark", None)  # importing it would fail: main stops before
    assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 3
    assert "no CUDA device" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_compare_numbers_keys_nan_and_tolerance():
    a = {"map": {"mono": 0.8, "cross": float("nan")}, "loss": [1.0, 0.5]}
    close = {"map": {"mono": 0.8004, "cross": float("nan")}, "loss": [1.0, 0.5009]}
    got = gpu_check.compare_numbers(a, close, 1e-3)
    assert got["ok"] and math.isclose(got["max_abs_diff"], 9e-4, rel_tol=1e-6)
    far = gpu_check.compare_numbers(a, {**close, "loss": [1.0, 0.52]}, 1e-3)
    assert not far["ok"] and far["over"] == ["loss.1"]
    one_nan = gpu_check.compare_numbers(a, {**close, "map": {"mono": float("nan"), "cross": float("nan")}}, 1e-3)
    assert not one_nan["ok"] and one_nan["over"] == ["map.mono"]
    missing = gpu_check.compare_numbers(a, {"map": {"mono": 0.8}, "loss": [1.0, 0.5]}, 1e-3)
    assert not missing["ok"] and missing["missing"] == ["map.cross"]


def test_compare_topk_accepts_ties_and_catches_wrong_or_repeated_rows():
    rng = np.random.default_rng(0)
    x = gpu_check.unit_vectors(50, 8, rng)
    x[10] = x[3]  # a tie
    q = np.stack([x[3], gpu_check.unit_vectors(1, 8, rng)[0]])
    scores = q @ x.T
    ref = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    ref_s = np.take_along_axis(scores, ref, axis=1)
    assert ref[0, :2].tolist() == [3, 10]
    swapped = ref.copy()
    swapped[0, :2] = [10, 3]  # the other order of the tie: still exact
    got = gpu_check.compare_topk(q, x, ref_s, ref, ref_s, swapped, 1e-4)
    assert got["ok"] and got["same_rows_fraction"] == 0.8
    wrong = ref.copy()
    wrong[1, 4] = np.argsort(scores[1])[0]  # the worst row, with the 5th row's score
    assert not gpu_check.compare_topk(q, x, ref_s, ref, ref_s, wrong, 1e-4)["ok"]
    repeated = ref.copy()
    repeated[0, 1] = 3
    got = gpu_check.compare_topk(q, x, ref_s, ref, ref_s, repeated, 1e-4)
    assert not got["ok"] and not got["rows_distinct"]


def test_precision_summary():
    runs = {"fp32": {"loss": [2.0, 1.5, 1.2], "seconds": [5.0, 0.2, 0.2]},
            "bf16": {"loss": [2.02, 1.5, 1.2], "seconds": [3.0, 0.1, 0.1]},
            "fp16": {"loss": [2.01, float("inf"), 1.2], "seconds": [3.0, 0.1, 0.05]}}
    got = gpu_check.precision_summary(runs)
    assert got["runs"]["bf16"] == {"steps": 3, "first_loss": 2.02, "last_loss": 1.2, "losses_finite": True,
                                   "first_loss_rel_diff_vs_fp32": 0.01, "median_step_seconds": 0.1, "ok": True,
                                   "speedup_vs_fp32": 2.0}
    assert not got["runs"]["fp16"]["ok"] and not got["ok"]
    runs["bf16"]["loss"][0] = 2.2  # 10% off fp32 at the same batch
    runs["fp16"]["loss"][1] = 1.5
    got = gpu_check.precision_summary(runs)
    assert not got["runs"]["bf16"]["ok"] and got["runs"]["fp16"]["ok"]


def test_run_checks_records_errors_skips_past_the_deadline_and_writes_the_report(tmp_path):
    out = tmp_path / "gpu_check.json"

    def boom():
        raise RuntimeError("no kernel")

    checks = [("a", lambda: {"ok": True, "x": 1}), ("b", boom), ("c", lambda: {"ok": None, "skipped": "n/a"})]
    report = gpu_check.run_checks(checks, {"checks": {}}, out, deadline=time.perf_counter() + 60)
    written = json.loads(out.read_text())
    assert written["status"] == {"a": "passed", "b": "FAILED", "c": "skipped"} and written["ok"] is False
    assert written["checks"]["b"]["error"] == "RuntimeError: no kernel" and written["checks"]["a"]["x"] == 1
    assert report["status"] == written["status"]
    late = gpu_check.run_checks([("a", lambda: {"ok": True})], {"checks": {}}, out, deadline=time.perf_counter() - 1)
    assert late["checks"]["a"] == {"ok": None, "skipped": "time budget spent"} and not late["ok"]
    ok = gpu_check.run_checks(checks[::2], {"checks": {}}, out, deadline=time.perf_counter() + 60)
    assert ok["ok"] and json.loads(out.read_text())["ok"]


def test_no_dropout_copy(tiny_model_dir, tmp_path):
    copy = gpu_check.no_dropout_copy(tiny_model_dir, tmp_path / "plain")
    config = json.loads((copy / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0.0 and config["attention_probs_dropout_prob"] == 0.0
    assert json.loads((tiny_model_dir / "config.json").read_text())["hidden_dropout_prob"] > 0  # source untouched
    assert {p.name for p in copy.iterdir()} == {p.name for p in tiny_model_dir.iterdir()}


def test_short_run_is_deterministic_and_compares_equal(tiny_model_dir, tmp_path):
    from hybrid_ir.evalsets import load_pool
    from hybrid_ir.params import Params

    p = Params()
    params = dataclasses.replace(p, train=dataclasses.replace(p.train, batch_size=4, freeze_layers=1),
                                 model=dataclasses.replace(p.model, max_length=32))
    pairs = build_pairs(SHARED_CORPORA / "xquad", SHARED_CORPORA / "xquad-r", ["de", "en"], [0], seed=0)
    queries, candidates = load_pool(SHARED_CORPORA / "xquad-r", ["de", "en"], articles={0})
    base = gpu_check.no_dropout_copy(tiny_model_dir, tmp_path / "plain")
    a, b = (gpu_check.short_run(base, pairs, queries, candidates, params, "cpu", 3, tmp_path / name)
            for name in ("a", "b"))
    assert len(a["loss"]) == 3 and all(math.isfinite(v) for v in a["loss"])
    assert set(a["metrics"]["map"]) >= {"mono", "cross", "multi"} and a["queries"].shape[0] == len(queries)
    got = gpu_check.compare_runs(a, b)
    assert got["ok"] and got["max_abs_embedding_diff"] == 0.0 and got["loss"]["max_abs_diff"] == 0.0
    b["metrics"]["map"]["mono"] += 0.01
    assert not gpu_check.compare_runs(a, b)["ok"]


def test_faiss_check_skips_without_gpu_support():
    import faiss

    if gpu_check.faiss_gpu_available(faiss):
        pytest.skip("faiss-gpu present: the check runs for real")
    assert gpu_check.check_faiss() == {"ok": None, "skipped": "faiss-gpu not available",
                                       "faiss": getattr(faiss, "__version__", None)}
