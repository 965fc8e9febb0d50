"""Per-language-pair mAP matrices (query language x passage language) and their heatmaps.

The diagonal is the mono setting (X-X), the rest the cross setting (X-Y), from the per-cell rows
of hybrid_ir.metrics (`reports/per_language/VARIANT.csv`). Heatmaps are small palette PNGs drawn
with matplotlib's Agg canvas (no pyplot state, no timestamp in the file).
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    labels = labels or {}
    names = list(matrices)
    values = np.concatenate([m.to_numpy().ravel() for m in matrices.values()])
    lo, hi = np.nanmin(values), np.nanmax(values)
    n_cols = min(2, len(names))
    n_rows = -(-len(names) // n_cols)
    size = max(len(m) for m in matrices.values())
    panel = 0.4 * size + 0.7
    fig = Figure(figsize=(n_cols * panel + 1.0, n_rows * panel + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    small = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        small.save(tmp, format="PNG", optimize=True)
