"""Device and numeric precision: the device choice, bf16 support, `auto` precision and autocast.

bf16 autocast pays only where the hardware multiplies bf16 natively: CUDA GPUs from Ampere on, and CPUs
with AVX512_BF16 or AMX. Elsewhere (an AVX2-only CPU, say) oneDNN emulates it and a matmul runs 8 to 80x
slower than in fp32, so `auto` picks bf16 there and fp32 here. What was chosen is recorded with the
outputs (train_summary.json, the index metadata); results in bf16 and fp32 differ in the last digits.
"""
from __future__ import annotations

import contextlib
import logging

import torch

from .errors import ParamsError

log = logging.getLogger(__name__)


def device_for(preferred: str = "auto") -> str:
    """"cuda" if available and allowed by `preferred` ("auto"/"cuda"), else "cpu"."""
    if preferred in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def native_bf16(device: str) -> bool:
    """Whether `device` multiplies bf16 in hardware (not emulated)."""
    if torch.device(device).type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, probe, lambda: False)())
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def resolve(precision: str, device: str, key: str) -> str:
    """The precision to run: `auto` becomes bf16 where native, else fp32; fp16 needs CUDA."""
    cuda = torch.device(device).type == "cuda"
    if precision == "fp16" and not cuda:
        raise ParamsError(f"{key}: fp16 needs CUDA (loss scaling with torch.amp.GradScaler); use bf16 or fp32 on CPU")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        log.warning("%s: bf16 on %s without native bf16 (no AVX512_BF16/AMX): emulated and slow; "
                    "auto or fp32 is faster here", key, device)
    return precision


def autocast(device: str, precision: str):
    """bf16 or fp16 autocast on the device's type; fp32: none."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ValueError(f"autocast: resolve {precision!r} first")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
