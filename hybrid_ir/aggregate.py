"""A variant's runs (one per training seed) read and pooled for the report: the mean over seeds of the
per-run outputs. With one seed every function returns that run's values unchanged (a mean of one)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .runs import BASE, Run
from .vocab import DATASETS, VARIANTS

PER_LANG_KEYS = ["dataset", "setting", "query_lang", "passage_lang"]
PER_QUERY_KEYS = ["setting", "query_lang", "passage_lang", "query_index", "qid"]


def variant_runs(seeds) -> dict:
    """{variant: [its runs]}: base once, every trained variant once per training seed."""
    return {BASE: [Run(BASE)], **{v: [Run(v, int(s)) for s in seeds] for v in VARIANTS}}


def seed_mean_table(frames: list, keys: list | None = None) -> pd.DataFrame:
    """Row-wise mean over seeds of the numeric columns of tables that list the same rows (`keys`; None: the
    non-float columns) in the same order; other columns are taken from the first. ValueError when the rows
    differ."""
    first = frames[0]
    if keys is None:
        keys = [c for c in first.columns if not pd.api.types.is_float_dtype(first[c])]
    rows = first[keys].reset_index(drop=True)
    for other in frames[1:]:
        if len(other) != len(first) or not other[keys].reset_index(drop=True).equals(rows):
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


@dataclass
class Results:
    """What the report reads of every run, pooled per variant (the mean over its seeds)."""
    runs: dict           # {variant: [Run]}
    metrics: dict        # {variant: seed-mean metrics dict}
    per_run_metrics: dict  # {run name: metrics dict}
    per_lang: pd.DataFrame   # seed-mean per-language rows, `variant` = the variant
    per_query: dict      # {dataset: {variant: seed-mean per-query table}} (question-id statistics, cells)
    by_seed: dict        # {dataset: {variant: {seed: per-query table}}} (the two-level resampling)
    losses: pd.DataFrame  # every trained run's step log, with `variant` and `seed`
    miracl: dict         # {variant: seed-mean MIRACL metrics ({} while off)}
    per_topic: dict      # {variant: seed-mean MIRACL per-topic table} (variants with MIRACL results)


def read_runs(runs: dict, reports: Path, data: Path) -> Results:
    """Every run's evaluate (and MIRACL) outputs and training log, under reports/ and data/."""
    per_run = {r.name: json.loads((reports / "metrics" / f"{r.name}.json").read_text())
               for group in runs.values() for r in group}
    metrics, per_lang, logs = {}, [], []
    per_query, by_seed = {d: {} for d in DATASETS}, {d: {} for d in DATASETS}
    miracl, per_topic = {}, {}
    for v, group in runs.items():
        metrics[v] = seed_mean_metrics([per_run[r.name] for r in group])
        tables = [pd.read_csv(reports / "per_language" / f"{r.name}.csv") for r in group]
        per_lang.append(seed_mean_table(tables, PER_LANG_KEYS).assign(variant=v))
        for d in DATASETS:
            by_seed[d][v] = {r.seed: pd.read_parquet(data / "eval_results" / r.name / f"{d}.parquet") for r in group}
            per_query[d][v] = seed_mean_table(list(by_seed[d][v].values()), PER_QUERY_KEYS)
        logs += [pd.read_csv(data / "models" / r.name / "train_log.csv").assign(variant=v, seed=r.seed)
                 for r in group if r.trained]
        miracl[v] = seed_mean_metrics([json.loads((reports / "miracl" / f"{r.name}.json").read_text())
                                       for r in group])
        if miracl[v]:
            per_topic[v] = seed_mean_table([pd.read_parquet(data / "miracl_runs" / r.name / "per_query.parquet")
                                            for r in group])
    return Results(runs, metrics, per_run, pd.concat(per_lang), per_query, by_seed, pd.concat(logs), miracl, per_topic)
