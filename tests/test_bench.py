"""bench/benchmark.py helpers: the time-stamped dvc log, stage times from outputs, the target checks."""
import importlib.util
import io
import os
from pathlib import Path

import pytest

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
        "encode": {"speedup_bf16_vs_st_fp32": 2.5},
        "quality": {"max_abs_delta_bf16_vs_st_fp32": 0.006},
        "evaluate": {"total_seconds": 4.0},
        "stages": {"stages": {"train_hybrid@13": 100.0, "encode@hybrid-13": 40.0, "report": 10.0, "train_mono@13": 350.0},
                   "total_seconds": 660.0},
    }
    got = bench.checks(report)
    assert got["encode_speedup_vs_st_fp32"]["met"] and got["eval_full_xquad_r_seconds"]["met"]
    assert not got["abs_delta_map_vs_st_fp32"]["met"]
    assert got["default_repro_minutes"] == {"value": 11.0, "target": "<= 10.0", "met": False}
    assert got["exp_run_fraction"]["value"] == round(150 / 660, 3) and got["exp_run_fraction"]["met"]
    report["stages"]["exp_run"] = {"total_seconds": 330.0}
    assert bench.checks(report)["exp_run_fraction"]["value"] == 0.5
    del report["stages"]["total_seconds"]
    assert bench.checks(report)["default_repro_minutes"]["met"] is None
