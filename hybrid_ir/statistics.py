"""Bootstrap confidence intervals and paired tests over questions for the LAReQA metrics.

The resampling unit is the question id, shared by a question's translations: one replicate
draws n question ids with replacement (n = the dataset's distinct ids) and every (setting,
query language, passage language) cell keeps each of its queries as many times as its id was
drawn. Cell means and their macro-averages are recomputed on every replicate exactly as
hybrid_ir.metrics does (cells left empty by a replicate drop out of the average), so each
interval covers the whole headline number, not one language. A "question" metric (the rank
correlation of parallel queries) is the mean over the drawn question ids of each id's mean.

- Interval: 95% percentile bootstrap (B replicates, numpy generator seeded with `seed`).
- Paired test: every variant is scored on the same replicates, so the difference A - B is
  bootstrapped directly; its two-sided p-value is
      p = min(1, 2 * min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (B + 1)),
  the percentile-interval inversion (p < 0.05 about when the 95% interval of the difference
  excludes 0). Identical variants give p = 1; the smallest p is 2 / (B + 1).
  p_holm: Holm's step-down adjustment over the variant pairs of one (dataset, metric).
Sums use einsum without BLAS, so the same inputs give bit-identical numbers on a machine.
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

# name -> (setting, per-query column, aggregation); recall names follow the default k's
METRICS = {
    "map.mono": ("mono", "ap", "macro"),
    "map.cross": ("cross", "ap", "macro"),
    "map.multi": ("multi", "ap", "macro"),
    "map.multi_micro": ("multi", "ap", "micro"),
    "recall.mono_r1": ("mono", "recall", "macro"),
    "recall.cross_r1": ("cross", "recall", "macro"),
    "recall.multi_r10": ("multi", "recall", "macro"),
    "rank_distance": ("multi", "rank_distance", "macro"),
    # hybrid_ir.bias: absent from a per-query table without its columns
    "bias.peer": ("multi", "peer", "macro"),
    "bias.language_eta2": ("multi", "language_eta2", "macro"),
    "bias.rank_corr": ("multi", "rank_corr", "question"),
    "bias.same_lang_top10": ("multi", "same_lang_top10", "macro"),
}
CONFIDENCE = 0.95


def resample_counts(n: int, n_boot: int, seed) -> np.ndarray:
    """[n_boot, n] float64: how often each of n units is drawn in each replicate (seed: an int or a
    sequence of ints, as numpy's default_rng takes)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (np.arange(n_boot)[:, None] * n + draws).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def replicate_weights(qids, n_boot: int, seed, cluster_of=None) -> tuple[np.ndarray, int]:
    """([1 + n_boot, len(qids)] per-question weights, number of clusters) for metric_replicates.

    Row 0 is all ones (the estimate); row b weights each question by how often its cluster was drawn
    in replicate b. cluster_of: {qid: cluster label} (e.g. its article); None = every question id is
    its own cluster (then the weights are resample_counts itself, bit for bit)."""
    if cluster_of is None:
        index, n = np.arange(len(qids)), len(qids)
    else:
        missing = [q for q in qids if q not in cluster_of]
        if missing:
            raise ValueError(f"no cluster for question id {missing[0]!r} ({len(missing)} without one)")
        labels = sorted({cluster_of[q] for q in qids})
        position = {c: i for i, c in enumerate(labels)}
        index, n = np.array([position[cluster_of[q]] for q in qids], dtype=np.int64), len(labels)
    counts = resample_counts(n, n_boot, seed)
    return np.vstack([np.ones((1, len(qids))), counts[:, index]]), n


def _columns(per_query: pd.DataFrame, qids) -> dict:
    """The arrays _cell_sums reads, computed once per table: question positions in `qids`, and the
    (query, passage) language pair as one integer whose order is the pairs' sorted order."""
    q = pd.Index(qids).get_indexer(per_query["qid"])
    if (q < 0).any():
        raise ValueError("per-query table holds a question id outside the resampling set")
    ql, ql_names = pd.factorize(per_query["query_lang"], sort=True)
    pl, pl_names = pd.factorize(per_query["passage_lang"], sort=True)
    return {"frame": per_query, "n_qids": len(qids), "q": q.astype(np.int64),
            "setting": per_query["setting"].to_numpy(), "pair": ql.astype(np.int64) * max(len(pl_names), 1) + pl}


def _cell_sums(cols: dict, setting: str, column: str):
    """([n_qid, n_cells] sums of `column`, same-shape counts) for the cells of one setting; cells in the
    sorted order of their (query, passage) language pairs, rows summed in table order."""
    values = cols["frame"][column].to_numpy(np.float64)
    keep = (cols["setting"] == setting) & ~np.isnan(values)
    cells, c = np.unique(cols["pair"][keep], return_inverse=True)
    q = cols["q"][keep]
    sums = np.zeros((cols["n_qids"], len(cells)))
    counts = np.zeros((cols["n_qids"], len(cells)))
    np.add.at(sums, (q, c), values[keep])
    np.add.at(counts, (q, c), 1.0)
    return sums, counts


def metric_replicates(per_query: pd.DataFrame, weights: np.ndarray, qids) -> dict:
    """{metric: [R] values}, one per row of weights [R, len(qids)] (a row of ones = the estimate).

    The one weighted-replicate function: the question-id bootstrap here and the two-level resampling
    of hybrid_ir.resampling both call it, with weights from replicate_weights."""
    cols = _columns(per_query, qids)
    out = {}
    cache = {}
    for name, (setting, column, how) in METRICS.items():
        if column not in per_query.columns:
            continue
        if how == "question":  # per question id: the mean of its queries; then over the drawn ids
            sums, counts = (a.sum(axis=1) for a in _cell_sums(cols, setting, column))
            mean_q = np.where(counts > 0, sums / np.where(counts > 0, counts, 1), 0.0)
            total = np.einsum("rq,q->r", weights, (counts > 0).astype(np.float64), optimize=False)
            num = np.einsum("rq,q->r", weights, mean_q, optimize=False)
            out[name] = np.where(total > 0, num / np.where(total > 0, total, 1), np.nan)
            continue
        if (setting, column) not in cache:
            sums, counts = _cell_sums(cols, setting, column)
            cache[setting, column] = (
                np.einsum("rq,qc->rc", weights, sums, optimize=False),
                np.einsum("rq,qc->rc", weights, counts, optimize=False),
            )
        s, c = cache[setting, column]
        if how == "micro":
            total = c.sum(axis=1)
            out[name] = np.where(total > 0, s.sum(axis=1) / np.where(total > 0, total, 1), np.nan)
        else:
            means = np.where(c > 0, s / np.where(c > 0, c, 1), np.nan)
            kept = np.count_nonzero(c > 0, axis=1)
            out[name] = np.where(kept > 0, np.nansum(means, axis=1) / np.maximum(kept, 1), np.nan)
    return out


def _interval(values: np.ndarray) -> tuple[float, float]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def paired_p_value(diff: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference from its replicates (see module doc)."""
    d = diff[~np.isnan(diff)]
    if d.size == 0:
        return float("nan")
    low, high = np.count_nonzero(d <= 0), np.count_nonzero(d >= 0)
    return float(min(1.0, 2 * (1 + min(low, high)) / (d.size + 1)))


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN kept as NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (order.size - i) * p[j]))
        out[j] = running
    return out


def bootstrap(per_query_by_variant: dict, *, n_boot: int = 1000, seed: int = 13):
    """Intervals and paired tests for the variants of one dataset.

    per_query_by_variant: {variant: LareqaResult.per_query_all}; all variants are resampled with
    the same question ids. Returns (intervals, pairs) frames:
      intervals: variant, metric, estimate, lo, hi, n_questions, n_boot
      pairs: a, b (a after b in the input order), metric, diff (a - b), lo, hi, p, p_holm
    """
    variants = list(per_query_by_variant)
    qids = sorted(set().union(*(set(t["qid"]) for t in per_query_by_variant.values())))
    weights, _ = replicate_weights(qids, n_boot, seed)
    reps = {v: metric_replicates(t, weights, qids) for v, t in per_query_by_variant.items()}
    intervals = []
    for v in variants:
        for name, values in reps[v].items():
            lo, hi = _interval(values[1:])
            intervals.append({"variant": v, "metric": name, "estimate": float(values[0]), "lo": lo, "hi": hi,
                              "n_questions": len(qids), "n_boot": n_boot})
    shared = [name for name in METRICS if all(name in r for r in reps.values())]
    pairs = paired_tests(reps, variants, {name: (name,) for name in shared}, ["metric"])
    return pd.DataFrame(intervals), pairs


def paired_tests(reps: dict, variants, cells: dict, columns) -> pd.DataFrame:
    """Paired bootstrap test of each later variant a against each earlier b in every cell, Holm-adjusted
    over the variant pairs of a cell. reps: {variant: {cell key: replicates, estimate first}};
    cells: {cell key: the values of `columns` that name the cell in the frame}."""
    rows = []
    for b, a in itertools.combinations(variants, 2):  # a: the later variant
        for key, values in cells.items():
            d = reps[a][key] - reps[b][key]
            lo, hi = _interval(d[1:])
            rows.append({"a": a, "b": b, **dict(zip(columns, values)), "diff": float(d[0]), "lo": lo, "hi": hi,
                         "p": paired_p_value(d[1:])})
    pairs = pd.DataFrame(rows, columns=["a", "b", *columns, "diff", "lo", "hi", "p"])
    pairs["p_holm"] = np.nan
    for _, idx in pairs.groupby(list(columns), sort=False).groups.items():
        pairs.loc[idx, "p_holm"] = holm(pairs.loc[idx, "p"])
    return pairs


def bootstrap_datasets(per_query: dict, *, n_boot: int = 1000, seed: int = 13):
    """bootstrap() for {dataset: {variant: per_query_all}}; frames gain a `dataset` column."""
    ints, prs = [], []
    for dataset, by_variant in per_query.items():
        i, p = bootstrap(by_variant, n_boot=n_boot, seed=seed)
        ints.append(i.assign(dataset=dataset))
        prs.append(p.assign(dataset=dataset))
    intervals = pd.concat(ints, ignore_index=True)
    pairs = pd.concat(prs, ignore_index=True)
    return (intervals[["dataset"] + [c for c in intervals.columns if c != "dataset"]],
            pairs[["dataset"] + [c for c in pairs.columns if c != "dataset"]])


def cell_differences(per_query_by_variant: dict, comparisons, *, column: str = "ap", n_boot: int = 1000,
                     seed: int = 13) -> pd.DataFrame:
    """Paired difference a - b of the mean `column` in every (query language, passage language) cell of
    the mono and cross settings (the language-pair matrix), on the resamples of bootstrap() (same ids,
    same seed). comparisons: [(a, b), ...]. Returns a, b, query_lang, passage_lang, diff, lo, hi, p,
    p_holm (Holm over the cells of one comparison), significant (the 95% interval excludes 0)."""
    qids = sorted(set().union(*(set(t["qid"]) for t in per_query_by_variant.values())))
    weights, _ = replicate_weights(qids, n_boot, seed)
    means = {}
    for v, t in per_query_by_variant.items():
        cols = _columns(t, qids)
        for setting in ("mono", "cross"):
            rows = t[(t["setting"] == setting) & t[column].notna()]
            cells = sorted(set(zip(rows["query_lang"], rows["passage_lang"])))
            sums, counts = _cell_sums(cols, setting, column)
            s = np.einsum("rq,qc->rc", weights, sums, optimize=False)
            c = np.einsum("rq,qc->rc", weights, counts, optimize=False)
            for j, cell in enumerate(cells):
                means[v, cell] = np.where(c[:, j] > 0, s[:, j] / np.where(c[:, j] > 0, c[:, j], 1), np.nan)
    rows = []
    for a, b in comparisons:
        cells = sorted({cell for (v, cell) in means if v == a} & {cell for (v, cell) in means if v == b})
        for x, y in cells:
            d = means[a, (x, y)] - means[b, (x, y)]
            lo, hi = _interval(d[1:])
            rows.append({"a": a, "b": b, "query_lang": x, "passage_lang": y, "diff": float(d[0]), "lo": lo,
                         "hi": hi, "p": paired_p_value(d[1:])})
    out = pd.DataFrame(rows, columns=["a", "b", "query_lang", "passage_lang", "diff", "lo", "hi", "p"])
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["a", "b"], sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"])
    out["significant"] = (out["lo"] > 0) | (out["hi"] < 0)
    return out


def stats_record(intervals: pd.DataFrame, pairs: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """JSON-ready record of the intervals and paired tests (NaN written as null)."""
    def records(frame):
        return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")]

    return {
        "method": {
            "unit": "question id (all its translations together)",
            "interval": f"{CONFIDENCE:.0%} percentile bootstrap",
            "test": "paired bootstrap on the same resamples; p = min(1, 2 min(1 + #{d<=0}, 1 + #{d>=0}) / (B + 1))",
            "p_holm": "Holm over the variant pairs of one dataset and metric",
            "n_boot": n_boot,
            "seed": seed,
        },
        "intervals": records(intervals),
        "pairs": records(pairs),
    }


def topic_bootstrap(per_query_by_variant: dict, measures, *, n_boot: int = 1000, seed: int = 13):
    """Intervals and paired tests for per-topic measures of monolingual retrieval (MIRACL).

    per_query_by_variant: {variant: frame with lang, qid and the measure columns}. Topics are resampled
    within each language (seed + language index), the same resamples for every variant; `mean` is the
    macro average over languages recomputed on every replicate. Returns (intervals, pairs) frames:
      intervals: variant, lang, metric, estimate, lo, hi, n_topics, n_boot
      pairs: a, b (a after b in the input order), lang, metric, diff (a - b), lo, hi, p, p_holm
    """
    variants = list(per_query_by_variant)
    langs = sorted(set().union(*(set(t["lang"]) for t in per_query_by_variant.values())))
    reps = {v: {} for v in variants}
    sizes = {}
    for i, lang in enumerate(langs):
        qids = sorted(set().union(*(set(t.loc[t["lang"] == lang, "qid"]) for t in per_query_by_variant.values())))
        sizes[lang] = len(qids)
        weights = np.vstack([np.ones((1, len(qids))), resample_counts(len(qids), n_boot, seed + i)])
        totals = np.einsum("bn->b", weights)
        for v, t in per_query_by_variant.items():
            rows = t[t["lang"] == lang].set_index("qid").reindex(qids)
            for m in measures:
                reps[v][(lang, m)] = np.einsum("bn,n->b", weights, rows[m].to_numpy(np.float64)) / totals
    if langs:
        sizes["mean"] = sum(sizes.values())
        for v in variants:
            for m in measures:
                reps[v][("mean", m)] = np.mean([reps[v][(lang, m)] for lang in langs], axis=0)
    cells = [(lang, m) for lang in ([*langs, "mean"] if langs else []) for m in measures]
    intervals = []
    for v in variants:
        for lang, m in cells:
            values = reps[v][(lang, m)]
            lo, hi = _interval(values[1:])
            intervals.append({"variant": v, "lang": lang, "metric": m, "estimate": float(values[0]), "lo": lo,
                              "hi": hi, "n_topics": sizes[lang], "n_boot": n_boot})
    pairs = paired_tests(reps, variants, {cell: cell for cell in cells}, ["lang", "metric"])
    return pd.DataFrame(intervals), pairs
