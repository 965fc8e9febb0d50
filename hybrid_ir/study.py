"""The replicated study: the default pipeline with more training seeds and the alpha sweep
(params.study.yaml), run in this workspace; its reports are kept in reports/study/, then the default is
restored.

    python -m hybrid_ir.study                              # make study
    python -m hybrid_ir.study --set 'sampler.sweep=[]'     # with an extra override (JSON value)

Steps: merge params.study.yaml onto params.yaml (validated first), `dvc repro`, copy the study's
reports, its params and its dvc.lock into reports/study/ (with the wall time of every stage), restore
params.yaml, `dvc repro` again. The study adds runs to the default's: its seed-13 runs are the default
runs, so the restoring repro re-runs only the report, and adding a seed later runs only that seed.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .io import write_json, write_text
from .overlay import merge
from .params import ParamsError, parse_params

OVERLAY = Path("params.study.yaml")
OUT = Path("reports/study")
# the study's small reports: tables, per-seed metrics, the claims and the sweep
KEEP = ["results.md", "claims.csv", "sweep.csv", "stats.json", "metrics", "plots/sweep.png",
        "plots/heatmap_xquad_r.png", "plots/heatmap_mlqa_r.png", "plots/val_loss.csv"]
_STAGE = re.compile(r"Running stage '([^']+)'")


def study_params(base: dict, overlay: dict, overrides: list[str]) -> dict:
    merged = merge(base, overlay)
    for item in overrides:
        key, _, value = item.partition("=")
        tree = merged
        *parents, leaf = key.split(".")
        for part in parents:
            tree = tree.setdefault(part, {})
        tree[leaf] = json.loads(value)
    parse_params(merged)  # a bad key or value stops here, naming it
    return merged


def repro(log_lines: list) -> dict:
    """`dvc repro`, its output passed through; {stage: seconds from its start to the next line of work}."""
    starts, order = {}, []
    proc = subprocess.Popen(["dvc", "repro"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:
        sys.stdout.write(line)
        log_lines.append(line)
        m = _STAGE.search(line)
        if m:
            starts[m.group(1)] = time.monotonic()
            order.append(m.group(1))
    end = time.monotonic()
    if proc.wait() != 0:
        raise SystemExit(f"study: dvc repro failed (exit {proc.returncode})")
    ends = [starts[n] for n in order[1:]] + [end]
    return {name: round(e - starts[name], 1) for name, e in zip(order, ends)}


def snapshot(params: dict, stages: dict, wall: float) -> None:
    """reports/study/: the kept reports, the study's params and dvc.lock, wall times, a metrics summary."""
    if OUT.exists():
        shutil.rmtree(OUT)
    for name in KEEP:
        src = Path("reports") / name
        dst = OUT / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        elif src.exists():
            shutil.copy2(src, dst)
    shutil.copy2("dvc.lock", OUT / "dvc.lock")
    write_text(OUT / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    write_json(OUT / "timing.json", {"wall_seconds": round(wall, 1), "stages_seconds": stages})
    stats = json.loads((OUT / "stats.json").read_text())
    summary = {"claims": {v: sum(r["verdict"] == v for r in stats["claims"]["rows"])
                          for v in ("supported", "contradicted", "not resolved", "not evaluated")}}
    for r in stats["clustered"]["intervals"]:
        if r["metric"] in ("map.mono", "map.cross", "map.multi", "rank_distance"):
            summary.setdefault(r["dataset"], {}).setdefault(r["variant"], {})[r["metric"]] = r["estimate"]
    write_json(OUT / "summary.json", summary)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="one more override")
    args = ap.parse_args(argv)
    params_file = Path("params.yaml")
    original = params_file.read_text()
    try:
        params = study_params(yaml.safe_load(original), yaml.safe_load(OVERLAY.read_text()) or {}, args.set)
    except (ParamsError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log: list = []
    t0 = time.monotonic()
    try:
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        stages = repro(log)
        snapshot(params, stages, time.monotonic() - t0)
    finally:
        params_file.write_text(original)
    print("study: reports/study/ written; restoring the default (only its report re-runs)")
    repro([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
