"""train <run>: fine-tune the base model for one run, VARIANT-SEED or hybrid-aALPHA-SEED (hybrid_ir.runs),
with mono, cross or hybrid batches (torchrun when train.processes > 1: this script re-runs itself in every
worker)."""
from hybrid_ir import distributed, runs
from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.errors import ParamsError
from hybrid_ir.io import ensure_free_space
from hybrid_ir.pair_store import PairStore
from hybrid_ir.precision import device_for
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.stage import DATA, model_dir, run
from hybrid_ir.training import train_variant


def main(params, argv):
    if len(argv) != 1:
        raise ParamsError(f"run: expected one name (e.g. hybrid-13), got {' '.join(argv) or 'nothing'}")
    this = runs.parse(argv[0])
    if not this.trained:
        raise ParamsError("run: base is the untrained model; nothing to train")
    processes = params.train.processes
    resolve_precision(params.train.precision, device_for(), "train.precision")  # fp16 without CUDA stops here
    if processes > 1 and not distributed.in_worker():
        raise SystemExit(distributed.launch(processes, __file__, argv, device_for()))
    ctx = distributed.setup()
    try:
        if ctx.is_main:
            model_bytes = sum(f.stat().st_size for f in model_dir("base").iterdir())
            ensure_free_space(DATA / "models", model_bytes, f"train {this.name}")
        pairs = PairStore.read(DATA / "pairs" / "store")
        train_variant(
            model_dir("base"), model_dir(this.name), pairs, this.variant,
            train=runs.run_train_params(params.train, this.seed), sampler_params=runs.run_sampler_params(params.sampler, this),
            model_params=params.model, pooling=resolve_pooling(params.model),
            checkpoint_dir=DATA / "checkpoints" / this.name, run_log=DATA / "train_runs" / f"{this.name}.json", ctx=ctx,
        )
    finally:
        distributed.teardown(ctx)


if __name__ == "__main__":
    run(main)
