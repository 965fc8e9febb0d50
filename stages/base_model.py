"""base_model: the encoder's starting point as a transformers directory (data/models/base)."""
from hybrid_ir.base_models import build_base_model
from hybrid_ir.stage import model_dir, run


def main(params, argv):
    build_base_model(params.model.source, model_dir("base"), params.model)


if __name__ == "__main__":
    run(main)
