import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """(model, tokenizer) of the tiny random model in eval mode, built once per test module."""
    import torch

    from hybrid_ir.base_models import build_base_model
    from hybrid_ir.encoder import load_encoder

    out = tmp_path_factory.mktemp("tiny") / "tiny"
    build_base_model("tiny-random", out)
    torch.manual_seed(0)
    return load_encoder(out)
