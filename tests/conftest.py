import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """The tiny random model's directory as the base_model stage writes it, built once per test module
    (tests read it, never write into it)."""
    from hybrid_ir.base_models import build_base_model

    out = tmp_path_factory.mktemp("tiny") / "base"
    build_base_model("tiny-random", out)
    return out


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir):
    """(model, tokenizer) of the tiny random model in eval mode."""
    import torch

    from hybrid_ir.encoder import load_encoder

    torch.manual_seed(0)
    return load_encoder(tiny_model_dir)
