"""bench/benchmark.py helpers: the time-stamped dvc log, stage times from outputs, the target checks."""
import importlib.util
import io
import os
import time
from pathlib import Path

import pytest

from hybrid_ir import flops

REPO = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("benchmark", REPO / "bench" / "benchmark.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

LOG = """100.0 Running stage 'download':
100.5 > python stages/download.py
103.0 Stage 'base_model' didn't change, skipping
103.5 Running stage 'train@mono':
110.0 train mono:  50%|#####     | 50/100\rtrain mono: 100%|##########| 100/100
190.0 Updating lock file 'dvc.lock'
190.5 Stage 'encode@base' is cached - skipping run, checking out outputs
193.0 Running stage 'report':
not a stamped line
200.0 To track the changes with git, run:
"""


def test_repro_log_stage_times():
    got = bench.parse_repro_log(LOG)
    assert got["stages"] == {"download": 3.0, "base_model": 0.5, "train@mono": 87.0, "encode@base": 2.5,
                             "report": 7.0}
    assert got["how"] == {"download": "ran", "base_model": "unchanged", "train@mono": "ran",
                          "encode@base": "cached", "report": "ran"}
    assert got["total_seconds"] == 100.0


def test_repro_log_without_stamps_is_refused():
    with pytest.raises(ValueError, match="--stamp"):
        bench.parse_repro_log("Running stage 'download':\n")


def test_stamp_prefixes_every_line_with_the_time():
    out = io.StringIO()
    bench.stamp_lines(io.StringIO("Running stage 'a':\nsecond\n"), out)
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["Running stage 'a':", "second"]
    assert all(float(line.split(" ", 1)[0]) > 0 for line in lines)
    assert bench.parse_repro_log(out.getvalue())["stages"].keys() == {"a"}


def test_stage_times_from_output_mtimes(tmp_path):
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n"
        "  a:\n    outs:\n    - path: out/a.txt\n"
        "  b:\n    outs:\n    - path: out/b\n"
        "  c:\n    outs:\n    - path: out/c.json\n    - path: missing\n"
    )
    (tmp_path / "out" / "b").mkdir(parents=True)
    files = {"out/a.txt": 1000.0, "out/b/x": 1030.0, "out/b/y": 1040.0, "out/c.json": 1100.0}
    for rel, t in files.items():
        (tmp_path / rel).write_text("x")
        os.utime(tmp_path / rel, (t, t))
    got = bench.stage_times_from_outputs(tmp_path)
    assert got["stages"] == {"a": None, "b": 40.0, "c": 60.0}
    assert got["total_seconds_after_first"] == 100.0 and got["one_run"]


def test_checks_compare_each_measure_with_its_target():
    report = {
        "encode": {"speedup_vs_st_fp32": 5.5, "matmul_fraction": {"pipeline": 0.4}, "precision": "fp32"},
        "quality": {"max_abs_delta_vs_st_fp32": 0.006},
        "train": {"speedup_vs_st_mnrl": 2.0, "matmul_fraction": {"pipeline": 0.7}, "precision": "fp32"},
        "profile": {"encode_batch": {"bound_by": "matmul", "shares": {"matmul": 0.5}},
                    "train_step": {"bound_by": "elementwise_other", "shares": {"elementwise_other": 0.4}}},
        "evaluate": {"total_seconds": 4.0},
        "stages": {"stages": {"train_hybrid@13": 100.0, "encode@hybrid-13": 40.0, "report": 10.0, "train_mono@13": 350.0},
                   "total_seconds": 660.0},
    }
    got = bench.checks(report)
    assert got["encode_speedup_vs_st_fp32"] == {"value": 5.5, "target": ">= 5.0", "met": True}
    assert got["eval_full_xquad_r_seconds"]["met"]
    assert not got["abs_delta_map_vs_st_fp32"]["met"] and got["abs_delta_map_vs_st_fp32"]["target"] == "<= 0.002"
    # a missed throughput target names the profile of what bounds it
    assert got["encode_matmul_fraction"] == {"value": 0.4, "target": ">= 0.6", "met": False, "precision": "fp32",
                                             "bound_by": "matmul", "profile": "profile.encode_batch",
                                             "shares": {"matmul": 0.5}}
    assert not got["train_step_speedup_vs_st_mnrl"]["met"]
    assert got["train_step_speedup_vs_st_mnrl"]["bound_by"] == "elementwise_other"
    assert got["train_step_matmul_fraction"]["met"] and "bound_by" not in got["train_step_matmul_fraction"]
    assert all(isinstance(v["met"], bool) for k, v in got.items() if k != "default_repro_minutes")
    assert got["default_repro_minutes"] == {"value": 11.0, "target": "<= 10.0", "met": False}
    assert got["exp_run_fraction"]["value"] == round(150 / 660, 3) and got["exp_run_fraction"]["met"]
    report["stages"]["exp_run"] = {"total_seconds": 330.0}
    assert bench.checks(report)["exp_run_fraction"]["value"] == 0.5
    del report["stages"]["total_seconds"]
    assert bench.checks(report)["default_repro_minutes"]["met"] is None


def test_layer_matmuls_carry_the_model_flops():
    h, i, t = 384, 1536, 40
    fwd = bench.layer_matmuls(h, i, t)
    assert sum(2 * m * k * n * c for _, (m, k, n), c, _ in fwd) == 2 * t * flops.linear_params({
        "hidden_size": h, "intermediate_size": i, "num_hidden_layers": 1})
    both = bench.layer_matmuls(h, i, t, backward=True)
    assert sum(2 * m * k * n * c for _, (m, k, n), c, _ in both) == 3 * sum(2 * m * k * n * c for _, (m, k, n), c, _ in fwd)
    assert {layout for *_, layout in both} == {"nt", "nn", "tn"}


def test_composite_rate_is_total_flops_over_total_time():
    rows = [{"flops": 100, "count": 4, "gflops": 2.0}, {"flops": 400, "count": 1, "gflops": 1.0}]
    assert bench.composite_rate(rows) == round(800 / (200 + 400), 1)


def test_best_seconds_repeats_within_the_budget_and_times_a_slow_call_once():
    calls = []
    sec, n = bench.best_seconds(lambda: calls.append(1), budget=0.01)
    assert n >= 1 and len(calls) == n + 1 and sec >= 0
    calls.clear()
    sec, n = bench.best_seconds(lambda: (calls.append(1), time.sleep(0.02)), budget=0.01)
    assert n == 1 and len(calls) == 1 and sec >= 0.02


def test_op_categories():
    assert [bench.op_category(n) for n in ("aten::addmm", "aten::mm", "aten::linear")] == ["matmul"] * 3
    assert [bench.op_category(n) for n in ("aten::bmm", "aten::_softmax",
                                           "aten::_scaled_dot_product_flash_attention_for_cpu")] == ["attention"] * 3
    assert bench.op_category("aten::gelu") == "elementwise_other"
    assert bench.op_category("autograd::engine::evaluate_function: AddmmBackward0") == "framework"


def test_profile_shares_split_the_wall_time():
    events = [("aten::addmm", 500.0, False), ("aten::mm", 100.0, False), ("aten::_softmax", 50.0, False),
              ("aten::gelu", 100.0, False), ("aten::_foreach_mul_", 150.0, True), ("optimizer", 10.0, True)]
    got = bench.profile_shares(events, wall_us=1000.0, top=2)
    assert got["shares"] == {"matmul": 0.6, "attention": 0.05, "elementwise_other": 0.1, "optimizer": 0.16,
                             "framework": 0.0, "outside_torch_ops": 0.09}
    assert got["bound_by"] == "matmul" and got["wall_ms"] == 1.0
    assert got["top_ops"] == [{"op": "aten::addmm", "category": "matmul", "ms": 0.5, "share": 0.5},
                              {"op": "aten::_foreach_mul_", "category": "optimizer", "ms": 0.15, "share": 0.15}]


def test_profile_call_sees_the_matmuls_and_the_optimizer_label():
    import torch
    from torch.profiler import record_function

    x, w = torch.randn(64, 64), torch.randn(64, 64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)

    def step():
        (x @ w).square().sum().backward()
        with record_function("optimizer"):
            opt.step()

    got = bench.profile_call(step, "cpu")
    assert got["shares"]["matmul"] > 0 and got["shares"]["optimizer"] > 0
    assert abs(sum(got["shares"].values()) - 1) < 0.01
