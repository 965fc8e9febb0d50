"""The alpha sweep: hybrid's headline metrics against its mono_ratio alpha, with intervals and verdicts.

Points: alpha = 0 is the X-Y runs and alpha = 1 the X-X-mono runs (hybrid at 0 and 1 draws exactly their
batches: tests/test_training.py), the hybrid runs sit at sampler.mono_ratio and the sweep runs at each
alpha of sampler.sweep; every point has one run per training seed. Each point's values and intervals
come from the two-level resampling (seeds, then articles) with the same article draws for every point,
and each point strictly between 0 and 1 gets the claims table of hybrid_ir.claims with that point in
hybrid's place (Holm within that point's table: the sweep is exploratory, one family per alpha).
The paper reports no numbers for alpha; it calls 0.4 to 0.6 stable and chose 0.5 on validation data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .claims import ADVANCED, ALL, SUPPORTED, claims_table
from .plots import _figure, _save_png
from .resampling import resample
from .runs import Run

CURVE_METRICS = {"map.mono": "mAP mono", "map.cross": "mAP cross", "map.multi": "mAP multi",
                 "rank_distance": "rank distance (lower is better)"}
STABLE = (0.4, 0.6)  # the paper's stable region


def sweep_points(seeds, sweep, mono_ratio: float) -> dict:
    """{alpha: [runs]} in increasing alpha; a sweep alpha equal to mono_ratio is the hybrid runs."""
    points = {0.0: [Run("cross", s) for s in seeds], 1.0: [Run("mono", s) for s in seeds],
              float(mono_ratio): [Run("hybrid", s) for s in seeds]}
    for a in sweep:
        points.setdefault(float(a), [Run("hybrid", s, float(a)) for s in seeds])
    return dict(sorted(points.items()))


def sweep_tables(by_seed: dict, data: Path, seeds, alphas, mono_ratio: float, clusters: dict, pools: dict, *,
                 n_boot: int, seed: int, trained=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the curve, the claims at each swept alpha) from the variants' per-query tables by seed
    ({dataset: {variant: {seed: table}}}) and the sweep runs' tables under data/eval_results/."""
    points = sweep_points(seeds, alphas, mono_ratio)
    per_alpha = {d: {a: {r.seed: by_seed[d][r.variant][r.seed] if r.alpha is None else
                         pd.read_parquet(Path(data) / "eval_results" / r.name / f"{d}.parquet") for r in group}
                     for a, group in points.items()} for d in by_seed}
    frame = curve(per_alpha, clusters, n_boot=n_boot, seed=seed)
    swept = {d: {a: t for a, t in by_alpha.items() if a in alphas and a != mono_ratio}
             for d, by_alpha in per_alpha.items()}
    baselines = {d: {v: by_seed[d][v] for v in ("base", "mono", "cross")} for d in by_seed}
    return frame, verdicts(swept, baselines, clusters, pools, n_boot=n_boot, seed=seed, trained=trained)


def point_name(alpha: float) -> str:
    return f"alpha={alpha:g}"


def curve(per_query: dict, clusters: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Rows (dataset, alpha, metric, estimate, lo, hi, seed_sd, n_seeds) for per_query
    {dataset: {alpha: {seed: table}}}; every alpha resampled on the same article draws."""
    rows = []
    for dataset, by_alpha in per_query.items():
        named = {point_name(a): tables for a, tables in by_alpha.items()}
        frame = resample(named, clusters[dataset], n_boot=n_boot, seed=seed).intervals()
        frame = frame[frame["metric"].isin(CURVE_METRICS)]
        alphas = {point_name(a): a for a in by_alpha}
        rows.append(frame.assign(dataset=dataset, alpha=frame["variant"].map(alphas)))
    out = pd.concat(rows, ignore_index=True)
    out["series"] = out["dataset"] + "/" + out["metric"]
    cols = ["series", "dataset", "alpha", "metric", "estimate", "lo", "hi", "seed_sd", "n_seeds", "n_clusters",
            "n_boot"]
    return out[cols].sort_values(["dataset", "metric", "alpha"], kind="stable").reset_index(drop=True)


def verdicts(per_query: dict, baselines: dict, clusters: dict, pools: dict, *, n_boot: int, seed: int,
             trained=()) -> pd.DataFrame:
    """The claims table at every alpha strictly between 0 and 1: per_query {dataset: {alpha: {seed: table}}},
    baselines {dataset: {variant: {seed: table}}} (mono, cross and base)."""
    tables = []
    alphas = sorted({a for by_alpha in per_query.values() for a in by_alpha if 0.0 < a < 1.0})
    for a in alphas:
        at = {d: {**baselines[d], ADVANCED: per_query[d][a]} for d in per_query}
        table, _ = claims_table(at, clusters, pools, n_boot=n_boot, seed=seed, trained=trained)
        tables.append(table.assign(alpha=a))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def best_of_both(table: pd.DataFrame) -> list[float]:
    """The alphas at which every evaluated all-language claim row of both datasets is supported."""
    if table.empty:
        return []
    rows = table[(table["scope"] == ALL) & (table["verdict"] != "not evaluated")]
    return [float(a) for a, g in rows.groupby("alpha") if (g["verdict"] == SUPPORTED).all()]


def write_plot(path: str | Path, frame: pd.DataFrame, titles: dict, dpi: int = 110) -> None:
    """One row per dataset, one panel per headline metric: estimate and 95% interval against alpha, the
    paper's stable region shaded."""
    datasets = list(dict.fromkeys(frame["dataset"]))
    fig = _figure(3.0 * len(CURVE_METRICS), 2.6 * len(datasets))
    axes = fig.subplots(len(datasets), len(CURVE_METRICS), squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, (metric, label) in enumerate(CURVE_METRICS.items()):
            ax, rows = axes[i][j], frame[(frame["dataset"] == dataset) & (frame["metric"] == metric)]
            ax.axvspan(*STABLE, color="#dddddd", label="paper's stable region")
            ax.fill_between(rows["alpha"], rows["lo"], rows["hi"], color="#2ca02c", alpha=0.25, label="95% interval")
            ax.plot(rows["alpha"], rows["estimate"], "o-", color="#2ca02c", label="mean over seeds")
            ax.set_title(f"{titles[dataset]}: {label}", fontsize=8)
            ax.set_xlabel("alpha (share of monolingual batches)", fontsize=7)
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0\nX-Y", "0.25", "0.5", "0.75", "1\nX-X-mono"], fontsize=6)
            ax.tick_params(axis="y", labelsize=6)
    axes[0][0].legend(fontsize=6, loc="best")
    _save_png(fig, path, dpi)


def lines(frame: pd.DataFrame, table: pd.DataFrame, titles: dict) -> list[str]:
    """Markdown: the curve as a table, the verdicts per alpha, and the best-of-both sentence."""
    if frame.empty:
        return []
    n_seeds = int(frame["n_seeds"].min())
    out = ["## The alpha sweep", "",
           f"hybrid at alpha = share of monolingual batches; 0 = X-Y, 1 = X-X-mono (the same runs). Mean over "
           f"{n_seeds} training seed(s) [95% interval, seeds then articles resampled] (seed SD). The paper reports "
           f"no numbers for alpha and calls {STABLE[0]}-{STABLE[1]} stable.", "",
           "![alpha sweep](plots/sweep.png)", "", "Table: [sweep.csv](sweep.csv)", ""]
    for dataset, title in titles.items():
        rows = frame[frame["dataset"] == dataset]
        if rows.empty:
            continue
        alphas = sorted(rows["alpha"].unique())
        out += [f"| {title} | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
                "|---|" + "---|" * len(alphas)]
        for metric, label in CURVE_METRICS.items():
            cells = []
            for a in alphas:
                r = rows[(rows["metric"] == metric) & (rows["alpha"] == a)].iloc[0]
                d = 1 if metric == "rank_distance" else 3
                sd = "" if np.isnan(r["seed_sd"]) else f" ({r['seed_sd']:.{d}f})"
                cells.append(f"{r['estimate']:.{d}f} [{r['lo']:.{d}f}, {r['hi']:.{d}f}]{sd}")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    if not table.empty:
        out += ["Verdicts of the paper's claims with hybrid at each alpha (all languages; Holm within each alpha's "
                "table of all rows):", "", "| alpha | dataset | claim | difference [95% interval] | Holm p | verdict |",
                "|---|---|---|---|---|---|"]
        for r in table[table["scope"] == ALL].itertuples():
            if r.verdict == "not evaluated":
                continue
            out.append(f"| {r.alpha:g} | {titles[r.dataset]} | {r.claim} | {r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] "
                       f"| {r.p_holm:.3f} | {r.verdict} |")
        best = best_of_both(table)
        out += ["", ("Best of both (every all-language claim supported on both datasets) at alpha "
                     + ", ".join(f"{a:g}" for a in best) + ".") if best else
                "No alpha is supported on every all-language claim at once: the best of both is not shown here.", ""]
    return out
