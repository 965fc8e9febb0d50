"""FLOPs of a BERT-style encoder from its config and token counts: throughput as GFLOP/s, and as a share
of the machine's matmul rate (bench/benchmark.py).

Counted: the matmuls, 2 FLOPs per multiply-add. Left out: layer norms, GELU, softmax, dropout, the
embedding lookup, pooling and the loss (elementwise or tiny; the loss of a batch of 16 is 2 x 16 x 32 x h).

Forward, per layer and sequence of s tokens (hidden h, intermediate i):
    linear     2 s (4 h^2 + 2 h i)      Q, K, V and output projections; FFN up and down
    attention  4 s^2 h                  Q K^T and softmax(.) V over all heads (2 s^2 h each)
A forward pass of several sequences sums this over sequences and layers. For mE5-small (h 384, i 1536,
12 layers) at s = 40: 141.6 MFLOP linear + 2.5 MFLOP attention per layer and sequence.

Training step: frozen layers (the bottom `frozen_layers`) run forward only; a trainable layer runs forward
and backward, and its backward is twice its forward (one matmul for the gradient with respect to the input,
one for the weights, per forward matmul): 3x forward. One exception, when its input needs no gradient (a
frozen layer or frozen embeddings below it), the first trainable layer skips the input gradients of Q, K
and V: 2 s 3 h^2 less. So, with F_l the forward FLOPs of layer l:
    step = sum_{frozen l} F_l + 3 sum_{trainable l} F_l - [no input grad] 6 s h^2 (summed over sequences)

`lengths` are tokens per sequence: the real ones give the useful work, the padded ones (padded_lengths) the
work the machine actually did.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dims:
    hidden: int
    intermediate: int
    layers: int


def dims_of(config) -> Dims:
    """Dims of a transformers config (or a dict with its keys)."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    return Dims(int(get("hidden_size")), int(get("intermediate_size")), int(get("num_hidden_layers")))


def linear_params(config) -> int:
    """Weights in one layer's matmuls (biases excluded): 4 h^2 + 2 h i."""
    d = dims_of(config)
    return 4 * d.hidden ** 2 + 2 * d.hidden * d.intermediate


def layer_forward_flops(config, lengths) -> dict:
    """{"linear", "attention"} FLOPs of one layer's forward over sequences of `lengths` tokens."""
    d, s = dims_of(config), np.asarray(lengths, dtype=np.int64)
    return {"linear": int(2 * linear_params(config) * s.sum()), "attention": int(4 * d.hidden * (s ** 2).sum())}


def forward_flops(config, lengths, layers: int | None = None) -> int:
    """Forward FLOPs of `layers` layers (default: all) over sequences of `lengths` tokens."""
    d = dims_of(config)
    per_layer = layer_forward_flops(config, lengths)
    return (d.layers if layers is None else layers) * (per_layer["linear"] + per_layer["attention"])


def train_step_flops(config, lengths, frozen_layers: int, input_grad: bool = False) -> int:
    """FLOPs of a forward and backward pass over sequences of `lengths` tokens, the bottom `frozen_layers`
    frozen (see the module docstring). input_grad: the first trainable layer's input needs a gradient
    (only when nothing below it is frozen, embeddings included)."""
    d = dims_of(config)
    if not 0 <= frozen_layers <= d.layers:
        raise ValueError(f"frozen_layers {frozen_layers} not in 0..{d.layers}")
    trainable = d.layers - frozen_layers
    total = forward_flops(config, lengths, frozen_layers) + 3 * forward_flops(config, lengths, trainable)
    if trainable and not input_grad:
        total -= 2 * 3 * d.hidden ** 2 * int(np.asarray(lengths, dtype=np.int64).sum())
    return int(total)


def padded_lengths(lengths, batch_size: int, keys=None) -> np.ndarray:
    """Tokens per sequence as run: sorted by `keys` (default: the lengths), longest first, in batches of
    batch_size, each padded to its longest (returned in sorted order)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-np.asarray(lengths if keys is None else keys), kind="stable")
    out = lengths[order].copy()
    for start in range(0, len(out), batch_size):
        out[start:start + batch_size] = out[start:start + batch_size].max()
    return out
