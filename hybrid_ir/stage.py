"""What every stage script shares: params loading (held to the stage's dvc.yaml entry), torch threads,
one-line errors."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .declared import declared_params, restrict
from .errors import ParamsError, PipelineError
from .params import load_params
from .runs import parse as parse_run
from .vocab import DATASETS, POOL_TABLES

DATA = Path("data")
REPORTS = Path("reports")
PARAMS_CHECKED = DATA / "params_checked.txt"  # the params_check stage's mark: params.yaml validated whole
BOTTOM = DATA / "bottom"  # the shared frozen bottom of the eval texts (hybrid_ir.shared_bottom)


def model_dir(variant: str) -> Path:
    return DATA / "models" / variant


def index_dir(variant: str, dataset: str) -> Path:
    return DATA / "index" / variant / dataset


def eval_tables() -> dict:
    """{(dataset, "queries" | "candidates"): the eval_sets stage's table} for every dataset."""
    import pandas as pd

    return {(d, n): pd.read_parquet(DATA / "eval" / d / f"{n}.parquet") for d in DATASETS for n in POOL_TABLES}


def run_name(argv: list) -> str:
    """The one argument of a per-run stage, checked: base, VARIANT-SEED or hybrid-aALPHA-SEED."""
    if len(argv) != 1:
        raise ParamsError(f"run: expected one name (base, mono-13, hybrid-a0.25-13, ...), got {' '.join(argv) or 'nothing'}")
    return parse_run(argv[0]).name


def stage_params(path: str | Path):
    """Validated params; under DVC (DVC_STAGE set) only the keys the stage declares can be read."""
    params = load_params(path)
    stage = os.environ.get("DVC_STAGE")
    return restrict(params, stage, declared_params(stage)) if stage else params


def run(main, uses_torch=True) -> None:
    """Load and validate params.yaml before any work, then call main(params, argv).

    uses_torch: False, or a function of the params, spares a stage that needs no torch its import (1 s).
    """
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed and nothing half-written stays
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        params = stage_params(os.environ.get("HYBRID_IR_PARAMS", "params.yaml"))
        if uses_torch(params) if callable(uses_torch) else uses_torch:
            import torch

            torch.set_num_threads(max(1, os.cpu_count() or 1))
        main(params, sys.argv[1:])
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
