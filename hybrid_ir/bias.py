"""Language bias beyond rank distance, per query of the multi setting (every query against the pooled
candidates of all languages), at full depth, with the tie rule of hybrid_ir.metrics (a stable
descending sort: among equal scores the lower column ranks first).

- peer: PEER, Probability of Equal Expected Rank (Yang et al., SIGIR 2024, arXiv 2405.00978; the
  `peer-measure` package, checked against it in tests). Per relevance level (relevant: shares the
  query's id; non-relevant: the rest of the pool) the Kruskal-Wallis p-value of "candidates of every
  language have the same expected rank", computed as the package does: H = (N - 1) SS_between /
  SS_total of the positions in the ranking (no tie correction), p = chi2.sf(H, G - 1) over the G
  languages present (1 when G < 2); PEER = sum of PEER_WEIGHTS[level] * p. Higher = fairer. The
  package takes the weights and a cutoff as arguments; ours: 0.5 / 0.5 and the whole pool (at a cutoff
  the package drops the non-relevant candidates below it and puts the relevant ones at a tail rank).
  In LAReQA a question has one relevant candidate per language, so the relevant level's groups are
  single values: H = G - 1 whatever the ranking and its p (0.440 for 11 languages) is fixed by the
  pool. Only the non-relevant level separates models, and with thousands of candidates its p is
  near 0 for any ranker with a measurable language effect.
- language_eta2: the effect size behind that p, SS_between / SS_total = H / (N - 1) (Kruskal-Wallis
  epsilon squared) of the non-relevant candidates: the share of their rank variance explained by
  their language. 0 = none, 1 = ranked in blocks by language. Ours, not the paper's.
- rank_corr: Spearman correlation between the full rankings that two translations of one question
  produce (mean rank correlation, Yang, Jiang & Baldwin, arXiv 2509.06195). Per query: the mean over
  the other translations of its question (their RC_i(a)); the headline averages a question's queries,
  then the questions: the mean over its language pairs, per question id. NaN for a question asked in
  one language only.
- same_lang_top10: share of the top 10 in the query's language. Beside it, `same_lang_top10_blind`:
  what a ranker blind to language (and to relevance) gives in expectation, the query language's share
  of the pool. In XQuAD-R that is about 1/11, as for a language-blind ranker that puts the relevant
  candidates (one per language) first.
Headline numbers are macro averages over query languages (rank_corr: over question ids), as the
statistics recompute them on every bootstrap replicate. The matrix products sum integer positions
(exact in float64), so the numbers do not depend on the BLAS or its threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import chi2

from .pool import nan_mean, pool_arrays, relevant_columns

PEER_WEIGHTS = {0: 0.5, 1: 0.5}  # non-relevant, relevant
TOP_K = 10
MEASURES = ("peer", "language_eta2", "rank_corr", "same_lang_top10")


def ranking(scores: np.ndarray) -> np.ndarray:
    """[b, C] column indices, best first: a stable descending sort (ties: the lower column first)."""
    scores = np.asarray(scores)
    if np.isnan(scores).any():
        raise ValueError("NaN in scores")
    if scores.dtype != np.float32 or scores.shape[1] >= 2**31:
        return np.argsort(-scores, axis=1, kind="stable")
    # float32: one unique int64 key per cell (score descending, then column), sorted by the faster
    # unstable sort; + 0 turns -0.0 into 0.0, which compare equal
    bits = (scores + np.float32(0)).view(np.uint32).astype(np.int64)
    ascending = np.where(bits >= 2**31, (2**32 - 1) - bits, bits + 2**31)  # the order of the floats
    keys = (((2**32 - 1) - ascending) << 31) | np.arange(scores.shape[1], dtype=np.int64)
    return np.argsort(keys, axis=1)


def positions(scores: np.ndarray) -> np.ndarray:
    """[b, C] int64: the 1-based rank of every column in its row (the tie rule of ranking())."""
    return _positions(ranking(scores))


def _positions(order: np.ndarray) -> np.ndarray:
    pos = np.empty(order.shape, dtype=np.int64)
    np.put_along_axis(pos, order, np.broadcast_to(np.arange(1, order.shape[1] + 1), order.shape), axis=1)
    return pos


def kruskal(n_g: np.ndarray, s_g: np.ndarray, ss: np.ndarray):
    """Per row: (p, eta2) of the Kruskal-Wallis statistic as peer-measure computes it, from the count
    n_g [b, G] and the sum s_g [b, G] of the positions of each language and their sum of squares ss [b]."""
    n = n_g.sum(axis=1)
    mean = s_g.sum(axis=1) / np.maximum(n, 1)
    mean_g = np.where(n_g > 0, s_g / np.maximum(n_g, 1), 0.0)
    ssg = np.einsum("bg,bg->b", n_g, (mean_g - mean[:, None]) ** 2)
    sst = ss - n * mean**2
    groups = np.count_nonzero(n_g, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        eta2 = np.where((groups >= 2) & (sst > 0), ssg / sst, np.nan)
        p = np.where(groups >= 2, chi2.sf((n - 1) * eta2, np.maximum(groups - 1, 1)), 1.0)
    return p, eta2


def spearman_rows(pos: np.ndarray) -> np.ndarray:
    """[L, L] Spearman correlations of rows that are each a permutation of 1..C (untied ranks)."""
    c = pos.shape[1]
    p = pos.astype(np.float64)
    mean, var = (c + 1) / 2, (c * c - 1) / 12
    return (p @ p.T / c - mean**2) / var


@dataclass
class BiasResult:
    summary: dict
    table: pd.DataFrame  # one row per query language (setting multi, passage_lang all)
    per_query: pd.DataFrame  # query_index, qid, query_lang and the MEASURES, queries with a relevant candidate


def _blocks(groups: list[np.ndarray], block_size: int):
    """Consecutive question groups of rows, about block_size rows per block (a question is never split)."""
    block = []
    for g in groups:
        block.append(g)
        if sum(map(len, block)) >= block_size:
            yield block
            block = []
    if block:
        yield block


def language_bias(scores: np.ndarray, q_lang: Sequence[str], q_qid: Sequence[str], c_lang: Sequence[str],
                  c_qids: Sequence[Sequence[str]], *, k: int = TOP_K, block_size: int = 256) -> BiasResult:
    """The measures of the module doc for one pool: scores [queries, candidates]."""
    scores, q_lang, q_qid, c_lang = pool_arrays(scores, q_lang, q_qid, c_lang, c_qids)
    nq, nc = scores.shape
    langs = sorted(set(c_lang) | set(q_lang))
    code = {lang: i for i, lang in enumerate(langs)}
    c_code = np.array([code[x] for x in c_lang], dtype=np.int64)
    q_code = np.array([code[x] for x in q_lang], dtype=np.int64)
    onehot = np.zeros((nc, len(langs)))
    onehot[np.arange(nc), c_code] = 1.0
    by_qid = relevant_columns(c_qids)
    out = {m: np.full(nq, np.nan) for m in MEASURES}
    has_relevant = np.array([bool(by_qid.get(q)) for q in q_qid])
    order = np.argsort(q_qid, kind="stable")
    cuts = np.flatnonzero(q_qid[order][1:] != q_qid[order][:-1]) + 1
    all_n = np.broadcast_to(onehot.sum(axis=0), (1, len(langs)))
    all_ss = nc * (nc + 1) * (2 * nc + 1) / 6  # positions are a permutation of 1..C
    for block in _blocks(np.split(order, cuts) if nq else [], block_size):
        rows = np.concatenate(block)
        top = ranking(scores[rows])
        pos = _positions(top)
        # relevant level from the few relevant columns; non-relevant = whole pool - relevant
        rel = [by_qid.get(q_qid[r], []) for r in rows]
        width = max(map(len, rel))
        idx = np.array([r + [-1] * (width - len(r)) for r in rel], dtype=np.int64).reshape(len(rows), width)
        valid = idx >= 0
        r_pos = np.where(valid, np.take_along_axis(pos, np.maximum(idx, 0), axis=1), 0).astype(np.float64)
        r_n, r_s = np.zeros((len(rows), len(langs))), np.zeros((len(rows), len(langs)))
        row_of = np.broadcast_to(np.arange(len(rows))[:, None], idx.shape)
        np.add.at(r_n, (row_of[valid], c_code[idx[valid]]), 1.0)
        np.add.at(r_s, (row_of[valid], c_code[idx[valid]]), r_pos[valid])
        r_ss = np.einsum("bm,bm->b", r_pos, r_pos)
        p_rel, _ = kruskal(r_n, r_s, r_ss)
        p_non, eta2 = kruskal(all_n - r_n, pos.astype(np.float64) @ onehot - r_s, all_ss - r_ss)
        out["peer"][rows] = PEER_WEIGHTS[0] * p_non + PEER_WEIGHTS[1] * p_rel
        out["language_eta2"][rows] = eta2
        out["same_lang_top10"][rows] = np.mean(c_code[top[:, :min(k, nc)]] == q_code[rows, None], axis=1)
        start = 0
        for g in block:
            if len(g) > 1 and nc > 1:
                rho = spearman_rows(pos[start:start + len(g)])
                out["rank_corr"][g] = (rho.sum(axis=1) - np.diag(rho)) / (len(g) - 1)
            start += len(g)
    kept = np.flatnonzero(has_relevant)
    per_query = pd.DataFrame({"query_index": kept, "qid": q_qid[kept].astype(str),
                              "query_lang": q_lang[kept].astype(str), **{m: out[m][kept] for m in MEASURES}})
    blind = {lang: float(np.mean(c_lang == lang)) if nc else float("nan") for lang in langs}
    table = per_query.groupby("query_lang", sort=True)[list(MEASURES)].mean()
    table.insert(0, "n_queries", per_query.groupby("query_lang").size())
    table["same_lang_top10_blind"] = [blind[x] for x in table.index]
    table = table.reset_index().assign(setting="multi", passage_lang="all")
    summary = {m: nan_mean(table[m]) for m in ("peer", "language_eta2", "same_lang_top10", "same_lang_top10_blind")}
    summary["rank_corr"] = nan_mean(per_query.groupby("qid")["rank_corr"].mean())
    return BiasResult(summary=summary, table=table, per_query=per_query)


def attach(per_query_all: pd.DataFrame, table: pd.DataFrame, bias: BiasResult):
    """The per-query and per-language frames of hybrid_ir.metrics with the bias columns on their multi rows."""
    by_query = bias.per_query.set_index("query_index")
    multi = (per_query_all["setting"] == "multi").to_numpy()
    per_query_all = per_query_all.copy()
    for m in MEASURES:
        values = per_query_all["query_index"].map(by_query[m]).to_numpy(np.float64)
        per_query_all[m] = np.where(multi, values, np.nan)
    cols = [*MEASURES, "same_lang_top10_blind"]
    table = table.merge(bias.table[["setting", "query_lang", "passage_lang", *cols]], how="left",
                        on=["setting", "query_lang", "passage_lang"])
    return per_query_all, table
