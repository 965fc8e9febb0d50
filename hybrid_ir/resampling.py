"""Two-level resampling of the LAReQA headline metrics: training seeds, then clusters of questions.

A variant trained with S seeds has one per-query table per seed (evaluate's per_query_all). One
replicate b:
  1. draws clusters (articles) with replacement, n_clusters of them; the draw is shared by every
     variant and seed, which pairs the variants on the same questions;
  2. for each variant, draws S of its seeds with replacement (an independent stream per variant);
  3. the variant's value = mean over the drawn seeds of the metric on the drawn articles' questions,
     each question weighted by how often its article was drawn, macro-averaged over cells exactly as
     the headline metric is (hybrid_ir.statistics.metric_replicates, shared with the question-id
     bootstrap).
The estimate is the mean over seeds of the metric on all questions. Intervals: 95% percentile over
the replicates; a paired difference a - b is the difference within each replicate, its two-sided p
the percentile inversion of statistics.paired_p_value. seed_sd: the seed-to-seed standard deviation
of the per-seed estimates (ddof 1; NaN with one seed).

With one seed the seed level is degenerate (every draw is that seed): the intervals then cover the
sampling of questions and articles only, not training variance, and the outputs say so
(covers_training_seeds = False). With cluster_of = None every question id is its own cluster; with
one seed that is statistics.bootstrap exactly (same draws, same numbers).
Percentile intervals: no variance formula is needed for a macro average of ratios with cells that
drop out, they respect the [0, 1] range of mAP, and they match the p-value inversion (p < 0.05 about
when the interval excludes 0). Coverage, measured on constructed data (two identical variants, 1000
datasets, B = 200, tests/test_resampling.py's generator): 0.93 with 48 articles and one seed (0.88 when
question ids are resampled instead: articles must be the unit); 0.97 with 48 articles, three seeds and
seed-by-article effects (resampling both levels counts that interaction twice: conservative); but
0.84 with 12 articles and three seeds when the seed-to-seed variance dominates (as on the default
run, where one change of train.seed moved multi mAP by up to 0.021, six times the question-level
SE (0.003) of a difference): a bootstrap over S seeds has (S - 1) / S of their variance and normal, not t,
tails, so with 3 seeds the intervals are too narrow and the verdicts too bold. More seeds help; the
seed-to-seed SD is printed beside every interval for that reason.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .statistics import (CONFIDENCE, METRICS, _interval, metric_replicates, paired_tests, replicate_weights,
                         resample_counts, stats_record)
from .vocab import EVALUATED, VARIANTS

UNTRAINED = tuple(v for v in EVALUATED if v not in VARIANTS)  # base: no training seed to resample

ARTICLE = "article"
QUESTION_ID = "question id"


def article_clusters(queries: pd.DataFrame) -> dict:
    """{qid: cluster} from an eval pool's queries (qid, lang, article): questions whose articles are
    linked through a shared question id in any language form one cluster.

    XQuAD-R articles are the same in every language, so a cluster is an article. MLQA-R numbers its
    articles per language file; linking them through the question ids recovers one cluster per
    English article (every MLQA-R question id has an English version)."""
    parent: dict = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    # union-find over nodes "lang:article" and "\0qid" (the NUL keeps the two kinds apart)
    for qid, lang, article in zip(queries["qid"], queries["lang"], queries["article"]):
        a, b = find(f"\0{qid}"), find(f"{lang}:{int(article)}")
        if a != b:
            parent[a] = b
    label = {}  # a cluster is named by its smallest "lang:article", whatever the order of the rows
    for node in list(parent):
        if not node.startswith("\0"):
            root = find(node)
            label[root] = min(label.get(root, node), node)
    return {qid: label[find(f"\0{qid}")] for qid in sorted(set(map(str, queries["qid"])))}


def _seed_stream(seed: int, variant: str) -> list[int]:
    """The generator seed of one variant's seed draws: independent of the article draw and of the
    other variants, and the same whatever other variants are resampled beside it."""
    return [int(seed), zlib.crc32(variant.encode())]


@dataclass
class Resampled:
    """Replicates of every headline metric of every variant on one dataset (estimate first)."""
    values: dict            # {variant: {metric: [1 + n_boot] values}}
    per_seed: dict          # {variant: {metric: [S] per-seed estimates}}
    seeds: dict             # {variant: [seed labels]}
    n_questions: int
    n_clusters: int
    cluster: str            # ARTICLE or QUESTION_ID
    n_boot: int
    seed: int
    variants: list = field(default_factory=list)

    @property
    def covers_training_seeds(self) -> bool:
        """Whether every trained variant has more than one seed (the untrained base has none)."""
        trained = [s for v, s in self.seeds.items() if v not in UNTRAINED]
        return bool(trained) and all(len(s) > 1 for s in trained)

    def difference(self, a: str, b: str, metric: str) -> np.ndarray:
        """[1 + n_boot] replicates of a - b (estimate first), paired on the same article draws."""
        return self.values[a][metric] - self.values[b][metric]

    def intervals(self) -> pd.DataFrame:
        rows = []
        for v in self.variants:
            for name, values in self.values[v].items():
                lo, hi = _interval(values[1:])
                per_seed = self.per_seed[v][name]
                sd = float(np.std(per_seed, ddof=1)) if per_seed.size > 1 else float("nan")
                rows.append({"variant": v, "metric": name, "estimate": float(values[0]), "lo": lo, "hi": hi,
                             "seed_sd": sd, "n_seeds": len(self.seeds[v]), "n_questions": self.n_questions,
                             "n_clusters": self.n_clusters, "cluster": self.cluster, "n_boot": self.n_boot})
        return pd.DataFrame(rows)

    def pairs(self) -> pd.DataFrame:
        """Every later variant a against every earlier b (statistics.paired_tests, Holm over the pairs of
        one metric)."""
        names = [m for m in METRICS if all(m in self.values[v] for v in self.variants)]
        return paired_tests(self.values, self.variants, {name: (name,) for name in names}, ["metric"])


def resample(per_query: dict, cluster_of: dict | None = None, *, n_boot: int = 1000, seed: int = 13) -> Resampled:
    """Two-level resampling of one dataset (see the module doc).

    per_query: {variant: {seed label: per-query table}} (evaluate's per_query_all, one per training
    seed); cluster_of: {qid: cluster}, e.g. article_clusters(queries); None = question ids."""
    variants = list(per_query)
    if not variants or any(not seeds for seeds in per_query.values()):
        raise ValueError("every variant needs at least one seed's per-query table")
    tables = [t for seeds in per_query.values() for t in seeds.values()]
    qids = sorted(set().union(*(set(t["qid"]) for t in tables)))
    weights, n_clusters = replicate_weights(qids, n_boot, seed, cluster_of)
    values, per_seed, seeds = {}, {}, {}
    for v, by_seed in per_query.items():
        seeds[v] = list(by_seed)
        reps = [metric_replicates(t, weights, qids) for t in by_seed.values()]  # [S] x {metric: [1 + B]}
        n = len(reps)
        # row 0: every seed once (the mean over seeds); then S seeds drawn with replacement
        draws = np.vstack([np.ones((1, n)), resample_counts(n, n_boot, _seed_stream(seed, v))])
        values[v], per_seed[v] = {}, {}
        for name in [m for m in METRICS if all(m in rep for rep in reps)]:  # metrics the tables carry
            r = np.stack([rep[name] for rep in reps], axis=1)  # [1 + B, S]
            # a seed drawn 0 times adds nothing, even where its replicate is NaN (an empty setting)
            values[v][name] = np.where(draws > 0, draws * r, 0.0).sum(axis=1) / n
            values[v][name][np.isnan(np.where(draws > 0, r, 0.0)).any(axis=1)] = np.nan
            per_seed[v][name] = r[0]
    return Resampled(values=values, per_seed=per_seed, seeds=seeds, n_questions=len(qids), n_clusters=n_clusters,
                     cluster=QUESTION_ID if cluster_of is None else ARTICLE, n_boot=n_boot, seed=seed,
                     variants=variants)


def resample_datasets(per_query: dict, clusters: dict | None = None, *, n_boot: int = 1000, seed: int = 13) -> dict:
    """{dataset: Resampled} for {dataset: {variant: {seed: table}}}; clusters: {dataset: cluster_of}."""
    return {d: resample(by_variant, None if clusters is None else clusters.get(d), n_boot=n_boot, seed=seed)
            for d, by_variant in per_query.items()}


def frames(resampled: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(intervals, pairs) of {dataset: Resampled}, with a leading `dataset` column (the columns
    hybrid_ir.report reads, as statistics.bootstrap_datasets writes them)."""
    ints = pd.concat([r.intervals().assign(dataset=d) for d, r in resampled.items()], ignore_index=True)
    prs = pd.concat([r.pairs().assign(dataset=d) for d, r in resampled.items()], ignore_index=True)
    first = lambda f: f[["dataset"] + [c for c in f.columns if c != "dataset"]]
    return first(ints), first(prs)


def coverage_sentence(resampled: dict) -> str:
    """One plain sentence: what the intervals cover."""
    runs = next(iter(resampled.values()))
    unit = "articles (each with all its questions and their translations)" if runs.cluster == ARTICLE else \
        "question ids (each with its translations)"
    seeds = sorted({len(s) for r in resampled.values() for v, s in r.seeds.items() if v not in UNTRAINED})
    if runs.covers_training_seeds:
        return (f"Intervals resample training seeds ({'/'.join(map(str, seeds))} per variant) and {unit}, "
                f"B = {runs.n_boot}; with this few seeds the seed level is coarse and the intervals likely too "
                "narrow where seed variance dominates (see hybrid_ir/resampling.py): read the seed-to-seed SD "
                "beside them.")
    return (f"Intervals resample {unit}, B = {runs.n_boot}, but not training seeds: with one training seed "
            "per variant, training variance is not covered, and a difference can still be seed noise.")


def record(resampled: dict) -> dict:
    """JSON-ready intervals and paired tests with the method stated (NaN written as null)."""
    intervals, pairs = frames(resampled)
    runs = next(iter(resampled.values()))
    out = stats_record(intervals, pairs, runs.n_boot, runs.seed)
    out["method"] = {
        "unit": f"two-level: training seeds of each variant, then {runs.cluster}s (shared by every variant)",
        "interval": f"{CONFIDENCE:.0%} percentile over the replicates",
        "test": out["method"]["test"],
        "p_holm": "Holm over the variant pairs of one dataset and metric",
        "estimate": "mean over seeds",
        "seed_sd": "standard deviation of the per-seed estimates (ddof 1; null with one seed)",
        "covers_training_seeds": all(r.covers_training_seeds for r in resampled.values()),
        "coverage": coverage_sentence(resampled),
        "n_clusters": {d: r.n_clusters for d, r in resampled.items()},
        "n_boot": runs.n_boot,
        "seed": runs.seed,
    }
    return out
