"""train <variant>: fine-tune the base model with mono, cross or hybrid batches."""
import pandas as pd

from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.io import ensure_free_space
from hybrid_ir.params import VARIANTS, ParamsError
from hybrid_ir.stage import DATA, model_dir, run
from hybrid_ir.training import train_variant


def main(params, argv):
    if len(argv) != 1 or argv[0] not in VARIANTS:
        raise ParamsError(f"variant: expected one of {', '.join(VARIANTS)}, got {' '.join(argv) or 'nothing'}")
    variant = argv[0]
    model_bytes = sum(f.stat().st_size for f in model_dir("base").iterdir())
    ensure_free_space(DATA / "models", model_bytes, f"train {variant}")
    pairs = pd.read_parquet(DATA / "pairs" / "pairs.parquet")
    train_variant(
        model_dir("base"), model_dir(variant), pairs, variant,
        train=params.train, sampler=params.sampler, model_params=params.model,
        pooling=resolve_pooling(params.model), checkpoint_dir=DATA / "checkpoints" / variant,
    )


if __name__ == "__main__":
    run(main)
