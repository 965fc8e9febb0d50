"""Per-language-pair mAP matrices (query language x passage language) and their heatmaps.

The diagonal is the mono setting (X-X), the rest the cross setting (X-Y), from the per-cell rows
of hybrid_ir.metrics (`reports/per_language/VARIANT.csv`). Heatmaps are small palette PNGs drawn
with matplotlib's Agg canvas (no pyplot state, no timestamp in the file). Also: the paired
differences of two variants per cell (hybrid_ir.statistics.cell_differences), and the
same-language share of the top 10 per query language (hybrid_ir.bias).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path


def pair_matrix(per_lang: pd.DataFrame, value: str = "map") -> pd.DataFrame:
    """Query language x passage language matrix of one variant and dataset (mono on the diagonal)."""
    cells = per_lang[per_lang["setting"].isin(["mono", "cross"])]
    langs = sorted(set(cells["query_lang"]) | set(cells["passage_lang"]))
    matrix = cells.pivot(index="query_lang", columns="passage_lang", values=value)
    matrix = matrix.reindex(index=langs, columns=langs).astype(np.float64)
    matrix.index.name, matrix.columns.name = "query_lang", "passage_lang"
    return matrix


def matrices_table(matrices: dict) -> pd.DataFrame:
    """{variant: pair_matrix} of one dataset as a CSV-ready frame: variant, query_lang, then one mAP
    column per passage language."""
    frames = [m.reset_index().assign(variant=v) for v, m in matrices.items()]
    table = pd.concat(frames, ignore_index=True)
    table.columns.name = None
    return table[["variant"] + [c for c in table.columns if c != "variant"]]


def variant_matrices(per_lang: pd.DataFrame, dataset: str, variants) -> dict:
    """{variant: pair_matrix} for the variants with rows for `dataset`."""
    out = {}
    for variant in variants:
        rows = per_lang[(per_lang["dataset"] == dataset) & (per_lang["variant"] == variant)]
        if len(rows):
            out[variant] = pair_matrix(rows)
    return out


def write_heatmaps(path: str | Path, matrices: dict, title: str, labels: dict | None = None,
                   dpi: int = 80) -> None:
    """One PNG with a heatmap panel per variant ({variant: matrix}), one shared colour scale."""
    labels = labels or {}
    names = list(matrices)
    values = np.concatenate([m.to_numpy().ravel() for m in matrices.values()])
    lo, hi = np.nanmin(values), np.nanmax(values)
    n_cols = min(2, len(names))
    n_rows = -(-len(names) // n_cols)
    size = max(len(m) for m in matrices.values())
    panel = 0.4 * size + 0.7
    fig = _figure(n_cols * panel + 1.0, n_rows * panel + 0.4)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    image = None
    for ax, name in zip(axes.ravel(), names):
        m = matrices[name]
        image = ax.imshow(m.to_numpy(), vmin=lo, vmax=hi, cmap="viridis")
        ax.set_title(labels.get(name, name), fontsize=9)
        ax.set_xticks(range(m.shape[1]), m.columns, fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        ax.set_xlabel("passage language", fontsize=7)
        ax.set_ylabel("query language", fontsize=7)
        mid = (lo + hi) / 2
        for (i, j), v in np.ndenumerate(m.to_numpy()):
            if not np.isnan(v):
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6.5 if size > 8 else 8,
                        color="black" if v > mid else "white")
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="mAP (cells: x100)")
    _save_png(fig, path, dpi)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | Path, dpi: int) -> None:
    """A small palette PNG without timestamp or version, written atomically."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    small = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        small.save(tmp, format="PNG", optimize=True)


def difference_matrix(diffs: pd.DataFrame, value: str = "diff") -> pd.DataFrame:
    """Query language x passage language matrix of one comparison's rows of cell_differences."""
    langs = sorted(set(diffs["query_lang"]) | set(diffs["passage_lang"]))
    matrix = diffs.pivot(index="query_lang", columns="passage_lang", values=value).reindex(index=langs, columns=langs)
    matrix.index.name, matrix.columns.name = "query_lang", "passage_lang"
    return matrix


def write_difference_heatmaps(path: str | Path, diffs: pd.DataFrame, title: str, labels: dict | None = None,
                              dpi: int = 80) -> None:
    """One panel per comparison (a, b) of cell_differences: a - b per cell on a diverging scale centred on
    0, cells x100; hatched where the 95% interval includes 0."""
    from matplotlib.patches import Rectangle

    labels = labels or {}
    comparisons = list(dict.fromkeys(zip(diffs["a"], diffs["b"])))
    size = len(set(diffs["query_lang"]) | set(diffs["passage_lang"]))
    panel = 0.4 * size + 0.7
    fig = _figure(len(comparisons) * panel + 1.0, panel + 0.5)
    axes = fig.subplots(1, len(comparisons), squeeze=False)[0]
    span = float(np.nanmax(np.abs(diffs["diff"]))) if len(diffs) else 0.0
    span = span if span > 0 else 1.0
    image = None
    for ax, (a, b) in zip(axes, comparisons):
        rows = diffs[(diffs["a"] == a) & (diffs["b"] == b)]
        m, sig = difference_matrix(rows), difference_matrix(rows, "significant")
        image = ax.imshow(m.to_numpy(np.float64), vmin=-span, vmax=span, cmap="RdBu")
        ax.set_title(f"{labels.get(a, a)} − {labels.get(b, b)}", fontsize=9)
        ax.set_xticks(range(m.shape[1]), m.columns, fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        ax.set_xlabel("passage language", fontsize=7)
        ax.set_ylabel("query language", fontsize=7)
        for (i, j), v in np.ndenumerate(m.to_numpy(np.float64)):
            if np.isnan(v):
                continue
            ax.text(j, i, f"{100 * v:+.1f}", ha="center", va="center", fontsize=5.5 if size > 8 else 8,
                    color="white" if abs(v) > span / 2 else "black")
            if not bool(sig.iloc[i, j]):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="////", edgecolor="grey",
                                       linewidth=0))
    fig.suptitle(f"{title} (hatched: 95% interval includes 0)", fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.6, label="mAP difference (cells: x100)")
    _save_png(fig, path, dpi)


BLIND = "language-blind"
# One colour per variant in every plot: the matplotlib figures here and the Vega-Lite templates in
# plot_templates/ (tests/test_plots.py checks that the templates carry the same mapping)
VARIANT_COLORS = {"base": "#7f7f7f", "mono": "#1f77b4", "cross": "#ff7f0e", "hybrid": "#2ca02c", BLIND: "#000000"}


def same_language_table(per_lang: pd.DataFrame, variants) -> pd.DataFrame:
    """Same-language share of the top 10 per variant, dataset and query language (multi rows of the
    per-language tables), with the language-blind expectation as one more `variant`; `series` names
    the bar (dataset/query language) for the DVC bar template."""
    multi = per_lang[per_lang["setting"] == "multi"]
    rows = [multi[multi["variant"] == v][["variant", "dataset", "query_lang", "same_lang_top10"]] for v in variants]
    blind = (multi.drop_duplicates(["dataset", "query_lang"])[["dataset", "query_lang", "same_lang_top10_blind"]]
             .rename(columns={"same_lang_top10_blind": "same_lang_top10"}).assign(variant=BLIND))
    table = pd.concat([*rows, blind[["variant", "dataset", "query_lang", "same_lang_top10"]]], ignore_index=True)
    table = table.rename(columns={"same_lang_top10": "share"})
    return table.assign(series=table["dataset"] + "/" + table["query_lang"])


def write_share_bars(path: str | Path, table: pd.DataFrame, titles: dict, labels: dict | None = None,
                     dpi: int = 80) -> None:
    """Grouped bars of same_language_table: one panel per dataset, a bar per variant and query language,
    the language-blind share as a black tick over each group."""
    labels = labels or {}
    datasets = [d for d in titles if (table["dataset"] == d).any()]
    variants = [v for v in dict.fromkeys(table["variant"]) if v != BLIND]
    fig = _figure(7.0, 2.2 * len(datasets) + 0.4)
    axes = fig.subplots(len(datasets), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(variants))
    for ax, d in zip(axes, datasets):
        rows = table[table["dataset"] == d]
        langs = sorted(set(rows["query_lang"]))
        x = np.arange(len(langs))
        for i, v in enumerate(variants):
            share = rows[rows["variant"] == v].set_index("query_lang")["share"].reindex(langs)
            ax.bar(x - 0.4 + width * (i + 0.5), share.to_numpy(np.float64), width, label=labels.get(v, v),
                   color=VARIANT_COLORS.get(v))
        blind = rows[rows["variant"] == BLIND].set_index("query_lang")["share"].reindex(langs).to_numpy(np.float64)
        ax.hlines(blind, x - 0.45, x + 0.45, colors="black", linewidth=1.5, label="language-blind ranker")
        ax.set_xticks(x, langs, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of top 10", fontsize=7)
        ax.set_title(f"{titles[d]}: top 10 in the query's language", fontsize=9)
    axes[0].legend(fontsize=6, ncol=len(variants) + 1, loc="upper right")
    _save_png(fig, path, dpi)


def loss_curves(logs: pd.DataFrame, window: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-step training curves with a trailing `window`-step mean of the loss, validation losses at the
    steps they were computed only): plot data in which every line (a variant and training seed) has a value
    at each of its points."""
    logs = logs if "seed" in logs else logs.assign(seed=0)
    steps = logs.reindex(columns=["variant", "seed", "step", "loss", "lr", "kind"]).copy()
    steps["loss_smooth"] = steps.groupby(["variant", "seed"], sort=False)["loss"].transform(
        lambda s: s.rolling(window, min_periods=1).mean())
    val = logs.dropna(subset=["val_loss"]).reindex(columns=["variant", "seed", "step", "val_loss"])
    return steps, val.reset_index(drop=True)
