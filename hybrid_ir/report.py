"""Our variants side by side with the paper's Tables 1 (mAP) and 2 (rank distance)."""
from __future__ import annotations

import pandas as pd

DATASETS = {"xquad_r": "XQuAD-R", "mlqa_r": "MLQA-R"}
VARIANT_ORDER = ["base", "mono", "cross", "hybrid"]
SAMPLING_NAME = {"base": "none (zero-shot)", "mono": "X-X-mono", "cross": "X-Y", "hybrid": "hybrid"}

# arXiv 2408.10536, Table 1 (mAP) and Table 2 (rank distance).
PAPER = pd.DataFrame(
    [
        ("XLM-R", "mono", .792, .674, .547, .648, .584, .473, 410.2, 287.5),
        ("XLM-R", "cross", .755, .700, .593, .626, .620, .508, 295.4, 226.7),
        ("XLM-R", "hybrid", .798, .705, .593, .648, .623, .512, 286.6, 227.1),
        ("LaBSE", "mono", .808, .752, .652, .681, .656, .550, 261.5, 225.3),
        ("LaBSE", "cross", .801, .762, .679, .671, .677, .576, 225.2, 198.3),
        ("LaBSE", "hybrid", .817, .767, .682, .686, .681, .579, 221.1, 195.0),
    ],
    columns=["init", "variant", "xquad_r.map.mono", "xquad_r.map.cross", "xquad_r.map.multi",
             "mlqa_r.map.mono", "mlqa_r.map.cross", "mlqa_r.map.multi",
             "xquad_r.rank_distance", "mlqa_r.rank_distance"],
)
HEADLINE = [f"{d}.map.{s}" for d in DATASETS for s in ("mono", "cross", "multi")] + [
    f"{d}.rank_distance" for d in DATASETS
]


def flatten(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def results_table(metrics_by_variant: dict, init: str) -> pd.DataFrame:
    """One row per run (ours and the paper's), headline columns in the paper's order."""
    ours = []
    for variant in [v for v in VARIANT_ORDER if v in metrics_by_variant]:
        row = flatten(metrics_by_variant[variant])
        ours.append({"source": "this run", "init": init, "variant": variant, **row})
    frame = pd.concat([pd.DataFrame(ours), PAPER.assign(source="paper")], ignore_index=True)
    first = ["source", "init", "variant"] + HEADLINE
    return frame[first + [c for c in frame.columns if c not in first]]


def _fmt(value, digits=3):
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if digits == 1 else f"{value:.{digits}f}"


def _best(values: pd.Series, lower: bool) -> set:
    """The variants holding the best value (ties kept: the paper prints three decimals)."""
    target = values.min() if lower else values.max()
    return set(values.index[values == target])


def _direction_lines(table: pd.DataFrame) -> list[str]:
    """Which trained variant is best per headline metric, ours against each paper init."""
    lines = []
    ours = table[(table["source"] == "this run") & (table["variant"] != "base")].set_index("variant")
    if len(ours) < 2:
        return lines
    names = lambda variants: " = ".join(SAMPLING_NAME[v] for v in VARIANT_ORDER if v in variants)
    for col in HEADLINE:
        if ours[col].isna().all():
            continue
        lower = col.endswith("rank_distance")
        best = _best(ours[col], lower)
        paper = {init: _best(g.set_index("variant")[col], lower) for init, g in PAPER.groupby("init")}
        hits = sum(bool(best & v) for v in paper.values())
        verdict = "agrees with" if hits == len(paper) else "agrees with one init of" if hits else "differs from"
        per_init = ", ".join(f"{k}: {names(v)}" for k, v in sorted(paper.items()))
        lines.append(f"- `{col}`: best here {names(best)}; paper best ({per_init}): {verdict} the paper")
    return lines


def markdown_report(metrics_by_variant: dict, init: str, notes: list[str]) -> tuple[str, pd.DataFrame]:
    table = results_table(metrics_by_variant, init)
    lines = ["# Results", "", *notes, ""]
    for dataset, title in DATASETS.items():
        lines += [f"## {title}: mAP and rank distance", "",
                  "| source | init | sampling | mAP mono | mAP cross | mAP multi | R@1 mono | R@10 multi | rank distance |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for _, r in table.iterrows():
            lines.append("| " + " | ".join([
                r["source"], r["init"], SAMPLING_NAME[r["variant"]],
                _fmt(r.get(f"{dataset}.map.mono")), _fmt(r.get(f"{dataset}.map.cross")),
                _fmt(r.get(f"{dataset}.map.multi")), _fmt(r.get(f"{dataset}.recall.mono_r1")),
                _fmt(r.get(f"{dataset}.recall.multi_r10")), _fmt(r.get(f"{dataset}.rank_distance"), 1),
            ]) + " |")
        lines.append("")
    direction = _direction_lines(table)
    if direction:
        lines += ["## Direction of the effects against the paper", "",
                  "Single seed, small budget: differences between samplers here are within seed noise "
                  "until confidence intervals say otherwise.", "", *direction, ""]
    return "\n".join(lines), table
