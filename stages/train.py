"""train <variant>: fine-tune the base model with mono, cross or hybrid batches (torchrun when
train.processes > 1: this script re-runs itself in every worker)."""
import pandas as pd

from hybrid_ir import distributed
from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.errors import ParamsError
from hybrid_ir.io import ensure_free_space
from hybrid_ir.precision import device_for
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.stage import DATA, model_dir, run
from hybrid_ir.training import train_variant
from hybrid_ir.vocab import VARIANTS


def main(params, argv):
    if len(argv) != 1 or argv[0] not in VARIANTS:
        raise ParamsError(f"variant: expected one of {', '.join(VARIANTS)}, got {' '.join(argv) or 'nothing'}")
    variant, processes = argv[0], params.train.processes
    resolve_precision(params.train.precision, device_for(), "train.precision")  # fp16 without CUDA stops here
    if processes > 1 and not distributed.in_worker():
        raise SystemExit(distributed.launch(processes, __file__, argv, device_for()))
    ctx = distributed.setup()
    try:
        if ctx.is_main:
            model_bytes = sum(f.stat().st_size for f in model_dir("base").iterdir())
            ensure_free_space(DATA / "models", model_bytes, f"train {variant}")
        pairs = pd.read_parquet(DATA / "pairs" / "pairs.parquet")
        train_variant(
            model_dir("base"), model_dir(variant), pairs, variant,
            train=params.train, sampler_params=params.sampler, model_params=params.model,
            pooling=resolve_pooling(params.model), checkpoint_dir=DATA / "checkpoints" / variant,
            run_log=DATA / "train_runs" / f"{variant}.json", ctx=ctx,
        )
    finally:
        distributed.teardown(ctx)


if __name__ == "__main__":
    run(main)
