"""Device choice, `auto` precision and autocast (hybrid_ir.precision)."""
import contextlib
import logging

import pytest
import torch

from hybrid_ir import precision
from hybrid_ir.errors import ParamsError


def test_device_for():
    assert precision.device_for("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert precision.device_for() == expected and precision.device_for("cuda") == expected


def test_fp16_is_refused_on_cpu():
    with pytest.raises(ParamsError, match="train.precision: fp16 needs CUDA"):
        precision.resolve("fp16", "cpu", "train.precision")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert precision.resolve("auto", "cpu", "encode.precision") == expected
    assert precision.resolve("fp32", "cpu", "encode.precision") == "fp32"


def test_explicit_bf16_is_kept_with_a_warning_where_emulated(monkeypatch, caplog):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with caplog.at_level(logging.WARNING, logger="hybrid_ir.precision"):
        assert precision.resolve("bf16", "cpu", "train.precision") == "bf16"
    assert "train.precision: bf16 on cpu without native bf16" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    with caplog.at_level(logging.WARNING, logger="hybrid_ir.precision"):
        precision.resolve("bf16", "cpu", "train.precision")
    assert caplog.text == ""


def test_native_bf16_follows_the_cpu_probes(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not precision.native_bf16("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert precision.native_bf16("cpu")


def test_autocast():
    assert isinstance(precision.autocast("cpu", "fp32"), contextlib.nullcontext)
    with precision.autocast("cpu", "bf16"):
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        precision.autocast("cpu", "auto")
