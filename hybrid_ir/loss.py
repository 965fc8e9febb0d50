"""The InfoNCE loss over a batch with in-batch and hard negatives, and GradCache, which gives that loss and
its gradients for a batch encoded in chunks (as sentence-transformers' CachedMultipleNegativesRankingLoss
keeps its cache beside the loss)."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoints import rng_state, set_rng_state


def info_nce_loss(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, temperature: float,
                  form: str = "infonce", offset: int = 0) -> torch.Tensor:
    """Each query against all positives and hard negatives of the batch, mean over queries.

    Inputs are L2-normalised, so q @ d.T are cosine scores. Query i's positive is pos[offset + i]
    (under DDP, pos and neg are the global batch and offset is the rank's first row).
    form "infonce": cross-entropy, -log(e^s+ / (e^s+ + sum e^s-)); "paper": the paper's printed form,
    -log(e^s+ / sum e^s-), the positive left out of the denominator (the loss can be negative).
    """
    docs = torch.cat([pos, neg], dim=0)
    scores = (q @ docs.T).float() / temperature
    target = torch.arange(q.shape[0], device=q.device) + offset
    if form == "infonce":
        return F.cross_entropy(scores, target)
    if form == "paper":
        positive = scores.gather(1, target[:, None]).squeeze(1)
        negatives = scores.scatter(1, target[:, None], float("-inf"))
        return (torch.logsumexp(negatives, dim=1) - positive).mean()
    raise ValueError(f"unknown loss form {form!r}: expected 'infonce' or 'paper'")


class GradCache:
    """Forward and backward of one batch's loss, the rows encoded in `chunks` chunks (Gao et al., 2021).

    Embed every chunk without a graph (the RNG state before each kept), take the gradient of the whole
    batch's loss with respect to the embeddings, then re-encode each chunk with a graph, its RNG state put
    back (so the same dropout), and backpropagate the cached gradients into it. Same loss and gradients as
    one pass, the activation memory of one chunk, a second forward pass. One chunk: a plain pass.

    encode(rows) -> (queries, positives, negatives) embeddings of table rows (autocast is the caller's);
    loss(q, pos, neg) -> the scalar loss; backward(loss) back-propagates it (a grad scaler scales it there);
    no_sync() skips the DDP gradient all-reduce, for every re-encoded chunk but the last.
    """

    def __init__(self, encode, loss, *, chunks: int, device: str, backward=None, no_sync=contextlib.nullcontext):
        self.encode, self.loss, self.chunks, self.device = encode, loss, chunks, device
        self.backward = backward or (lambda value: value.backward())
        self.no_sync = no_sync

    def step(self, rows: np.ndarray) -> torch.Tensor:
        """Loss of `rows` (detached), its gradients accumulated into the model."""
        chunks = [c for c in np.array_split(rows, self.chunks) if len(c)]
        if len(chunks) == 1:
            loss = self.loss(*self.encode(rows))
            self.backward(loss)
            return loss.detach()
        states, cached = self._embed_without_graph(chunks)
        loss = self.loss(*cached)
        self.backward(loss)  # gradients of the loss with respect to the cached embeddings
        self._replay(chunks, states, [x.grad for x in cached])
        return loss.detach()

    def _embed_without_graph(self, chunks):
        """(RNG state before each chunk, the concatenated (q, pos, neg) embeddings as leaves with grad)."""
        states, parts = [], []
        with torch.no_grad():
            for chunk in chunks:
                states.append(rng_state(self.device))
                parts.append(self.encode(chunk))
        return states, [torch.cat(x).requires_grad_() for x in zip(*parts)]

    def _replay(self, chunks, states, grads) -> None:
        """Re-encode each chunk with a graph under its first pass's RNG state; backpropagate its gradients."""
        bounds = np.cumsum([0] + [len(c) for c in chunks])
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            with contextlib.nullcontext() if last else self.no_sync():
                set_rng_state(states[i], self.device)
                outputs = self.encode(chunk)
                part = slice(int(bounds[i]), int(bounds[i + 1]))
                torch.autograd.backward(list(outputs), [g[part] for g in grads])
