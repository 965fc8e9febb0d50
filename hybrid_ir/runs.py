"""Runs: one trained (or untrained) encoder each, named in dvc.yaml's stages and in data/ and reports/.

  base              the untrained model (no training seed)
  VARIANT-SEED      mono | cross | hybrid trained with training seed SEED (train.seeds), e.g. hybrid-13
  hybrid-aALPHA-SEED  the alpha sweep (sampler.sweep): hybrid with mono_ratio ALPHA, e.g. hybrid-a0.25-13

A run's seed changes every random choice of its training: the validation question ids, the batch order
and batch kinds (sampling.HybridBatchSampler), the language pairs of cross batches and dropout. The pair
table (pairs.seed: hard negatives, samples) and the article split (split.seed) stay fixed, so every run
trains and is evaluated on the same data. alpha = 0 and 1 are X-Y and X-X-mono (same draws, same
weights: tests/test_training.py), so the sweep reuses those runs.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .declared import plain_type
from .errors import ParamsError
from .vocab import VARIANTS

BASE = "base"
_NAME = re.compile(r"^(?P<variant>mono|cross|hybrid)(?:-a(?P<alpha>[0-9.]+))?-(?P<seed>[0-9]+)$")


@dataclass(frozen=True)
class Run:
    variant: str                 # base | mono | cross | hybrid
    seed: int | None = None      # training seed; None for base
    alpha: float | None = None   # sweep runs only: hybrid's mono_ratio

    @property
    def name(self) -> str:
        if self.variant == BASE:
            return BASE
        alpha = "" if self.alpha is None else f"-a{self.alpha}"
        return f"{self.variant}{alpha}-{self.seed}"

    @property
    def trained(self) -> bool:
        return self.variant != BASE


def parse(name: str) -> Run:
    """The run a stage argument names (see the module doc); ParamsError otherwise."""
    if name == BASE:
        return Run(BASE)
    m = _NAME.match(name)
    if not m or (m["alpha"] is not None and m["variant"] != "hybrid"):
        raise ParamsError(f"run: expected base, VARIANT-SEED (VARIANT one of {', '.join(VARIANTS)}) or "
                          f"hybrid-aALPHA-SEED, got {name!r}")
    alpha = None if m["alpha"] is None else float(m["alpha"])
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ParamsError(f"run {name}: alpha must lie strictly between 0 and 1 (0 and 1 are cross and mono)")
    return Run(m["variant"], int(m["seed"]), alpha)


def run_train_params(train, seed: int):
    """train narrowed to one run's seed: a plain TrainParams (reads no `seeds`, which a train stage does
    not declare: adding a seed must not re-run the others)."""
    fields = {f.name: getattr(train, f.name) for f in dataclasses.fields(train) if f.name != "seeds"}
    return plain_type(train)(**fields, seeds=(seed,))


def run_sampler_params(sampler, run: Run):
    """The sampler knobs of a run: a sweep run's alpha as mono_ratio; otherwise `sampler` itself."""
    if run.alpha is None:
        return sampler
    return plain_type(sampler)(mono_ratio=run.alpha, cross_pairing=sampler.cross_pairing)
