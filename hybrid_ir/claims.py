"""The paper's claims (method.md, "What the paper's claims are") as a table of verdicts.

Every row compares hybrid with one baseline on one headline metric of one dataset, on all query
languages or on the paper's unseen ones (el, vi: the per-query rows whose query language is one of
them). The difference is oriented so that positive favours hybrid: hybrid - baseline for mAP,
baseline - hybrid for rank distance (lower is better). Its replicates come from the two-level
resampling (hybrid_ir.resampling): training seeds, then articles, paired across variants.

Tests, with theta0 the null value of the oriented difference d:
  superiority       "hybrid is better": theta0 = 0;
  non-inferiority   "hybrid is as good as the specialist": theta0 = -margin.
p: two-sided, the percentile inversion of statistics.paired_p_value applied to d - theta0; p_holm:
Holm over every evaluated row of one table (one family). Verdict, at ALPHA:
  supported      p_holm < ALPHA and the 95% interval lies above theta0;
  contradicted   p_holm < ALPHA and the 95% interval lies below theta0 (worse, beyond the margin);
  not resolved   anything else: a tie is never agreement, and a point estimate alone never decides.

Margins, fixed before looking at our numbers, from the paper's own effects: the specialist's advantage
over the other sampler (X-X-mono over X-Y on mono mAP, X-Y over X-X-mono on cross mAP and on rank
distance) is what "as good as the specialist" must not give up. Rule: a quarter of the median such
advantage in Tables 1-2 (both inits, both datasets), so a non-inferior hybrid keeps at least about
three quarters of a typical specialist edge.
  mAP: advantages 0.007-0.037, median 0.0215 -> MAP_MARGIN = 0.005 (below the smallest, 0.007).
  Rank distance scales with the candidate pool, so its margin is a share of the pool: advantages
  0.13%-0.88% of the paper's pools (13,014 XQuAD-R, 20,534 MLQA-R candidates), median 0.29% ->
  RD_MARGIN_SHARE = 0.07% of the pool, in rank units 9.1 (XQuAD-R) and 14.4 (MLQA-R) in the
  paper's pools, and proportionally fewer in a smaller pool.
tests/test_claims.py recomputes both from report.PAPER.

Beside each row: Effect Ratio and delta Relative Improvement (Breuer et al., SIGIR 2020, as the
repro_eval package computes them) of our difference against the paper's XLM-R and LaBSE rows:
  ER = (ours_hybrid - ours_base) / (paper_hybrid - paper_base)   (undefined when the paper's is 0);
  dRI = RI_paper - RI_ours,  RI = (hybrid - base) / base  (for rank distance the relative reduction
  (base - hybrid) / base, so that positive RI favours hybrid as everywhere in the table).
method.md writes dRI = RI' - RI; this module keeps the paper's and repro_eval's sign: dRI > 0 means our
relative improvement is smaller than the paper's. Both compare effects across another encoder
(XLM-R, LaBSE), other training data and other pools: they say how large our effect is relative to
the paper's, never whether it holds. The paper's per-language rows are not in report.PAPER, so the
unseen-language rows carry none.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .report import PAPER, SAMPLING_NAME
from .resampling import resample
from .statistics import _interval, holm, paired_p_value

ALPHA = 0.05
MAP_MARGIN = 0.005
RD_MARGIN_SHARE = 0.0007
PAPER_POOL = {"xquad_r": 13_014, "mlqa_r": 20_534}  # candidates in the paper's pools (method.md)
UNSEEN = ("el", "vi")  # the paper never trains on them
ADVANCED = "hybrid"
ALL = "all languages"

SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"
SUPPORTED, CONTRADICTED, NOT_RESOLVED, NOT_EVALUATED = "supported", "contradicted", "not resolved", "not evaluated"


@dataclass(frozen=True)
class Claim:
    number: int     # the claim's number in method.md (5: the same on unseen languages)
    metric: str     # a hybrid_ir.statistics.METRICS name
    baseline: str   # the variant hybrid is compared with
    test: str       # SUPERIORITY or NON_INFERIORITY

    @property
    def text(self) -> str:
        name = SAMPLING_NAME[self.baseline]
        if self.metric == "rank_distance":
            return f"rank distance {'<' if self.test == SUPERIORITY else '≤'} {name}"
        what = self.metric.split(".")[1]
        return f"{what} mAP {'>' if self.test == SUPERIORITY else '≥'} {name}"


CLAIMS = (
    Claim(1, "map.mono", "mono", NON_INFERIORITY),
    Claim(2, "map.cross", "cross", NON_INFERIORITY),
    Claim(3, "map.multi", "mono", SUPERIORITY),
    Claim(3, "map.multi", "cross", SUPERIORITY),
    Claim(4, "rank_distance", "cross", NON_INFERIORITY),
    Claim(4, "rank_distance", "mono", SUPERIORITY),
)


def lower_is_better(metric: str) -> bool:
    return metric == "rank_distance"


def margin(claim: Claim, pool_size: int) -> float:
    """The non-inferiority margin in the metric's units (0 for a superiority claim)."""
    if claim.test == SUPERIORITY:
        return 0.0
    return RD_MARGIN_SHARE * pool_size if lower_is_better(claim.metric) else MAP_MARGIN


def verdict(lo: float, hi: float, p_holm: float, null: float, alpha: float = ALPHA) -> str:
    """supported / contradicted / not resolved for an oriented difference (positive favours hybrid)."""
    if any(pd.isna(x) for x in (lo, hi, p_holm)):
        return NOT_EVALUATED
    if p_holm < alpha and lo > null:
        return SUPPORTED
    if p_holm < alpha and hi < null:
        return CONTRADICTED
    return NOT_RESOLVED


def effect_ratio(ours_adv: float, ours_base: float, paper_adv: float, paper_base: float) -> float:
    """Breuer et al.'s ER: our mean improvement over the paper's (NaN when the paper shows none)."""
    paper = paper_adv - paper_base
    return float("nan") if paper == 0 or pd.isna(paper) else float((ours_adv - ours_base) / paper)


def delta_ri(ours_adv: float, ours_base: float, paper_adv: float, paper_base: float,
             lower_better: bool = False) -> float:
    """Breuer et al.'s delta RI = RI_paper - RI_ours; for a lower-is-better measure RI is the relative
    reduction (base - adv) / base."""
    sign = -1.0 if lower_better else 1.0
    ri = lambda adv, base: sign * (adv - base) / base
    return float(ri(paper_adv, paper_base) - ri(ours_adv, ours_base))


def languages_trained_on(per_pair: dict) -> set:
    """Languages of the training pairs, from reports/pairs.json's per_pair keys ("de-en": count)."""
    return {lang for key, n in per_pair.items() if n for lang in key.split("-")}


def _subset(per_query: dict, languages) -> dict:
    return {v: {s: t[t["query_lang"].isin(languages)] for s, t in seeds.items()} for v, seeds in per_query.items()}


def _paper_effects(dataset: str, claim: Claim, ours_adv: float, ours_base: float) -> dict:
    out = {}
    col = f"{dataset}.{claim.metric}"
    for init, rows in PAPER.groupby("init", sort=False):
        if col not in PAPER.columns:
            out[f"er_{init}"] = out[f"dri_{init}"] = float("nan")
            continue
        by = rows.set_index("variant")[col]
        out[f"er_{init}"] = effect_ratio(ours_adv, ours_base, by[ADVANCED], by[claim.baseline])
        out[f"dri_{init}"] = delta_ri(ours_adv, ours_base, by[ADVANCED], by[claim.baseline],
                                      lower_is_better(claim.metric))
    return out


def claim_rows(resampled, dataset: str, scope: str, pool_size: int, with_paper: bool) -> list[dict]:
    """Rows of one (dataset, scope) from its Resampled (None: the scope has no data)."""
    rows = []
    for claim in CLAIMS:
        row = {"dataset": dataset, "scope": scope, "claim": claim.text, "paper_claim": claim.number,
               "metric": claim.metric, "baseline": claim.baseline, "test": claim.test,
               "margin": margin(claim, pool_size)}
        present = resampled is not None and {ADVANCED, claim.baseline} <= set(resampled.variants)
        if present:
            d = resampled.difference(ADVANCED, claim.baseline, claim.metric)
            d = -d if lower_is_better(claim.metric) else d
            lo, hi = _interval(d[1:])
            row.update(diff=float(d[0]), lo=lo, hi=hi, p=paired_p_value(d[1:] + row["margin"]),
                       n_seeds=min(len(resampled.seeds[ADVANCED]), len(resampled.seeds[claim.baseline])),
                       cluster=resampled.cluster, n_clusters=resampled.n_clusters)
            ours = resampled.values
            effects = _paper_effects(dataset, claim, ours[ADVANCED][claim.metric][0],
                                     ours[claim.baseline][claim.metric][0])
            if not with_paper:
                effects = {k: float("nan") for k in effects}
            row.update(effects)
        rows.append(row)
    return rows


def claims_table(per_query: dict, clusters: dict | None, pool_sizes: dict, *, n_boot: int = 1000, seed: int = 13,
                 unseen=UNSEEN, trained=()) -> tuple[pd.DataFrame, dict]:
    """The claims table and the all-language resamples it used ({dataset: Resampled}, every variant).

    per_query: {dataset: {variant: {seed label: per-query table}}}; clusters: {dataset: {qid: article}}
    (None: question ids); pool_sizes: {dataset: candidates in the pool} (the rank-distance margin);
    trained: the languages this run trained on (the unseen rows say when el or vi is one of them)."""
    rows, resampled = [], {}
    for dataset, by_variant in per_query.items():
        cluster_of = None if clusters is None else clusters[dataset]
        resampled[dataset] = resample(by_variant, cluster_of, n_boot=n_boot, seed=seed)
        rows += claim_rows(resampled[dataset], dataset, ALL, pool_sizes[dataset], True)
        present = sorted(set(unseen) & set().union(*(set(t["query_lang"]) for seeds in by_variant.values()
                                                     for t in seeds.values())))
        scope = ", ".join(present or unseen)
        if present and set(present) & set(trained):
            scope += f" (trained on here: {', '.join(sorted(set(present) & set(trained)))})"
        subset = None
        if present:
            compared = {v: s for v, s in by_variant.items() if v in {ADVANCED} | {c.baseline for c in CLAIMS}}
            subset = resample(_subset(compared, present), cluster_of, n_boot=n_boot, seed=seed)
        rows += claim_rows(subset, dataset, scope, pool_sizes[dataset], False)
    table = pd.DataFrame(rows)
    for col in ("diff", "lo", "hi", "p", "n_seeds", "cluster", "n_clusters"):
        if col not in table:
            table[col] = np.nan
    table["p_holm"] = holm(table["p"].to_numpy(np.float64))
    table["verdict"] = [verdict(r.lo, r.hi, r.p_holm, -r.margin) for r in table.itertuples()]
    first = ["dataset", "scope", "paper_claim", "claim", "metric", "baseline", "test", "margin", "diff", "lo", "hi",
             "p", "p_holm", "verdict"]
    return table[first + [c for c in table.columns if c not in first]], resampled


def summary_sentence(table: pd.DataFrame, covers_training_seeds: bool) -> str:
    """One plain sentence: what this table shows and what it does not."""
    counts = table["verdict"].value_counts()
    rows = int((table["verdict"] != NOT_EVALUATED).sum())
    maps = table[(table["verdict"] != NOT_EVALUATED) & (table["metric"] != "rank_distance")]
    half = float(np.median((maps["hi"] - maps["lo"]) / 2)) if len(maps) else float("nan")
    text = (f"Of {rows} claim rows, {counts.get(SUPPORTED, 0)} are supported, {counts.get(CONTRADICTED, 0)} "
            f"contradicted and {counts.get(NOT_RESOLVED, 0)} not resolved at Holm-adjusted {ALPHA:g}")
    if not pd.isna(half):
        text += f"; mAP differences smaller than about ±{half:.3f} (the median half-width) cannot be told apart here"
    if covers_training_seeds:
        return text + "."
    return (text + "; with one training seed per variant these verdicts hold for these trained weights on these "
            "questions, not for the training recipe: another seed may move them.")


def claims_record(table: pd.DataFrame) -> dict:
    """JSON-ready claims table with the rules stated (NaN written as null)."""
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in table.to_dict(orient="records")]
    return {
        "rules": {
            "orientation": "positive favours hybrid: hybrid - baseline (mAP), baseline - hybrid (rank distance)",
            "superiority": "null 0", "non-inferiority": "null -margin",
            "p": "two-sided, percentile inversion on the resampled difference minus the null",
            "p_holm": "Holm over every evaluated row of the table",
            "verdict": f"supported: p_holm < {ALPHA} and interval above the null; contradicted: p_holm < {ALPHA} "
                       "and interval below the null; not resolved: otherwise",
            "map_margin": MAP_MARGIN, "rank_distance_margin_share_of_pool": RD_MARGIN_SHARE,
            "er_dri": "Breuer et al. 2020 against the paper's rows (another encoder, other training data, other "
                      "pools); dri = RI_paper - RI_ours",
        },
        "rows": rows,
    }
