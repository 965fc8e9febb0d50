"""A variant's runs (one per training seed) read and pooled for the report: the mean over seeds of the
per-run outputs. With one seed every function returns that run's values unchanged (a mean of one)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .runs import BASE, Run


def variant_runs(seeds) -> dict:
    """{variant: [its runs]}: base once, every trained variant once per training seed."""
    from .vocab import VARIANTS

    return {BASE: [Run(BASE)], **{v: [Run(v, int(s)) for s in seeds] for v in VARIANTS}}


def seed_mean_table(frames: list, keys: list | None = None) -> pd.DataFrame:
    """Row-wise mean over seeds of the numeric columns of tables that list the same rows (`keys`; None: the
    non-float columns) in the same order; other columns are taken from the first. ValueError when the rows
    differ."""
    first = frames[0]
    if keys is None:
        keys = [c for c in first.columns if not pd.api.types.is_float_dtype(first[c])]
    for other in frames[1:]:
        if len(other) != len(first) or not other[keys].reset_index(drop=True).equals(first[keys].reset_index(drop=True)):
            raise ValueError("the runs of one variant list different rows; were they evaluated on the same pools?")
    out = first.copy()
    if len(frames) > 1:
        numeric = [c for c in first.columns if c not in keys and pd.api.types.is_numeric_dtype(first[c])]
        for c in numeric:
            out[c] = np.mean(np.stack([f[c].to_numpy(np.float64) for f in frames]), axis=0)
    return out


def seed_mean_metrics(records: list):
    """The mean over seeds of every number in nested metric dicts (keys of the first record); a number
    missing or None in any record gives None."""
    first = records[0]
    if isinstance(first, dict):
        return {k: seed_mean_metrics([r.get(k) if isinstance(r, dict) else None for r in records]) for k in first}
    if len(records) == 1:
        return first
    if any(isinstance(r, bool) or not isinstance(r, (int, float)) for r in records):
        return first if all(r == first for r in records) else None
    return float(np.mean(records))
