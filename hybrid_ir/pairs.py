"""Translated training pairs: one (virtual) row per (question id, query language, passage language).

The rows are composed from per-language units (:mod:`hybrid_ir.sources`): every monolingual and every
ordered cross-lingual combination of the languages a question id has, stored once per text in a
:class:`~hybrid_ir.pair_store.PairStore`. Several sources are mixed by question id (:func:`mix_sources`);
the sampler draws question ids uniformly, so a source's share of the batches is its share of the
question ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import leakage, sources, translate
from .corpora import CorpusError
from .pair_store import PairStore
from .sources import Skips
from .vocab import XQUAD_ARTICLES


def build_pair_table(units: pd.DataFrame, languages) -> pd.DataFrame:
    """The materialized pair table of `units`: one row per (qid, query language, passage language), sorted
    (small data only; the pipeline keeps the table virtual in a PairStore)."""
    return PairStore.from_units(units, languages).table()


def mix_sources(units: pd.DataFrame, weights: str, max_questions: int, seed: int):
    """Keep a seeded sample of each source's question ids; return (units, summary).

    ``proportional``: every source keeps its share of the question ids (all of them without a cap;
    with `max_questions`, that many in all, split in proportion to the sources' sizes), so batches
    draw from the sources in proportion to their size. ``equal``: every source keeps as many as the
    smallest (or max_questions / number of sources, if lower).
    """
    sizes = units.groupby("source")["qid"].nunique().sort_index()
    total = int(sizes.sum())
    if weights == "equal":
        n = int(sizes.min()) if len(sizes) else 0
        if max_questions:
            n = min(n, max_questions // max(1, len(sizes)))
        target = {s: n for s in sizes.index}
    elif max_questions and total > max_questions:
        target = {s: int(round(max_questions * int(k) / total)) for s, k in sizes.items()}
    else:
        target = {s: int(k) for s, k in sizes.items()}
    rng = np.random.default_rng(seed)
    keep = []
    for s, k in sizes.items():
        qids = sorted(units.loc[units["source"] == s, "qid"].unique())
        keep += qids if target[s] >= k else rng.choice(qids, size=target[s], replace=False).tolist()
    kept = units[units["qid"].isin(set(keep))].reset_index(drop=True)
    summary = {s: {"questions": int(k), "kept": min(int(k), target[s]),
                   "share": round(min(int(k), target[s]) / max(1, len(keep)), 4)} for s, k in sizes.items()}
    return kept, summary


def guard_articles(pairs_sources, train_articles, n_articles: int = XQUAD_ARTICLES) -> list[int]:
    """XQuAD-R articles the training data must not touch: all but the XQuAD training articles."""
    used = set(train_articles) if "xquad" in pairs_sources else set()
    return [a for a in range(n_articles) if a not in used]


def load_units(pp, corpora: Path, train_articles, skips: Skips, languages) -> pd.DataFrame:
    """Native units of every source in `pp.sources` (params.pairs) for `languages`."""
    frames = []
    for name in pp.sources:
        langs = sorted(set(languages) & set(sources.SOURCE_LANGUAGES[name]))
        if name == "xquad":
            frames.append(sources.xquad_units(corpora / "xquad", corpora / "xquad_r", langs, train_articles, pp.seed))
        elif name == "squad_mlqa":
            frames.append(sources.squad_mlqa_units(pp.squad_dir, pp.mlqa_dir, langs, pp.seed, pp.squad_questions,
                                                   skips))
        elif name == "mmarco":
            frames.append(sources.mmarco_units(pp.mmarco_dir, langs, pp.mmarco_queries, pp.seed, skips))
        else:
            raise ValueError(f"unknown source {name!r}")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=sources.UNIT_COLUMNS)


def prepare_units(params, corpora: Path, train_articles, skips: Skips):
    """Units of the configured sources after the leak exclusion and the mix: (units, eval sets, report).

    English is loaded whenever the MT stage translates from it, even if not a training language.
    """
    pp = params.pairs
    languages = set(pp.languages) | ({"en"} if params.translate.languages else set())
    units = load_units(pp, Path(corpora), train_articles, skips, languages)
    skips.check(pp.max_skip_fraction)
    evalsets = leakage.eval_sets(Path(corpora) / "xquad_r", Path(corpora) / "mlqa_r",
                                 guard_articles(pp.sources, train_articles))
    excluded = {}
    if pp.exclude_eval_overlap:
        units, excluded = leakage.exclude_overlap(units, evalsets)
    units, mix = mix_sources(units, pp.source_weights, pp.max_questions, pp.seed)
    return units, evalsets, {"excluded": excluded, "mix": mix, "skipped": skips.as_dict()}


def build_training_pairs(params, corpora: Path, cache_dir: Path, train_articles):
    """The pair store of params.pairs, with the MT stage's translations, leak-checked: (store, report).

    Raises LeakError when a unit (so every row it makes) shares a question id, title or sentence with an
    evaluation set.
    """
    skips = Skips()
    units, evalsets, report = prepare_units(params, corpora, train_articles, skips)
    units = translate.translated_units(units, cache_dir, params.translate, skips)
    skips.check(params.pairs.max_skip_fraction)
    units = units[units["lang"].isin(set(params.pairs.languages))]
    store = PairStore.from_units(units)
    if store.n_rows == 0:
        raise CorpusError(f"no training pairs from sources {list(params.pairs.sources)}")
    report["leak_check"] = leakage.check_no_leak(units, evalsets, rows=store.n_rows)
    report["skipped"] = skips.as_dict()
    report["skipped_total"] = skips.totals()
    return store, report


def metrics(counts: dict, report: dict) -> dict:
    """The numbers for reports/pairs.json: row counts (per source and language pair), skips, exclusions."""
    return {
        **counts,
        "skipped": report.get("skipped_total", {}),
        "excluded": {kind: v["units"] for kind, v in report.get("excluded", {}).items()},
    }
