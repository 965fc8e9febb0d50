"""LAReQA retrieval metrics: mAP, recall@k and rank distance over a multilingual pool.

Ranking is full depth (no cut-off) over the candidate pool of each setting.
Ties are broken deterministically by candidate index: among equal scores a lower
column index ranks first, i.e. for candidate c in a pool with scores s

    rank(c) = 1 + #{j : s_j > s_c} + #{j < c : s_j == s_c}

(1-based). This equals the position of c after a stable descending sort.
Sub-pools (one language) keep the original column order, so the rule is the same.
Note -0.0 == 0.0 (compare equal), and NaN scores are rejected.

Per query, with sorted ranks r_1 < ... < r_m of its relevant candidates:
  AP = (1/m) sum_i i / r_i,   R@k = #{r_i <= k} / m,   RD = r_m - r_1.

Settings (see method.md, "Evaluation"):
  mono  - queries in L vs candidates in L, for every query language L;
  cross - queries in X vs candidates in Y, every ordered pair X != Y;
  multi - every query vs all candidates.
Queries without a relevant candidate in the setting's pool are skipped (counted).
mono/cross are macro-averaged over settings, multi over query languages
("multi_micro" is the plain mean over queries, as in LAReQA's code). Settings
with no evaluated query are left out of the macro-averages.
LareqaResult.per_query_all holds every evaluated (setting, query) with its AP,
R@k and (multi only) rank distance: the input of hybrid_ir.statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .pool import cells, nan_mean, pool_arrays, relevant_columns
from .vocab import LAREQA_SETTINGS

# Max elements of one [rows, relevant, candidates] comparison tensor.
_ELEMENT_BUDGET = 48_000_000
_BIG = np.iinfo(np.int64).max


def _ranks_padded(scores: np.ndarray, idx: np.ndarray, block_size: int) -> np.ndarray:
    """Ranks of columns idx [nq, M] (valid entries first, -1 = padding).

    Returns int64 [nq, M]: each row's valid ranks sorted ascending, padding = _BIG.
    """
    nq, nc = scores.shape
    M = idx.shape[1]
    valid = idx >= 0
    out = np.full((nq, M), _BIG, dtype=np.int64)
    if M == 0 or nc == 0 or nq == 0:
        return out
    rows = max(1, min(block_size, _ELEMENT_BUDGET // (M * nc)))
    cols = np.arange(nc)
    for start in range(0, nq, rows):
        stop = min(start + rows, nq)
        blk = scores[start:stop]
        if np.isnan(blk).any():
            raise ValueError("NaN in scores")
        b_idx = np.where(valid[start:stop], idx[start:stop], 0)  # padding -> col 0
        s_rel = np.take_along_axis(blk, b_idx, axis=1)[:, :, None]  # [b, M, 1]
        gt = np.count_nonzero(blk[:, None, :] > s_rel, axis=2)
        ge = np.count_nonzero(blk[:, None, :] >= s_rel, axis=2)
        rank = 1 + gt
        # ties with other columns: add equal scores at a lower column index
        ti, tk = np.nonzero((ge - gt > 1) & valid[start:stop])
        if ti.size:
            eq = (blk[ti] == s_rel[ti, tk]) & (cols[None, :] < b_idx[ti, tk][:, None])
            rank[ti, tk] += np.count_nonzero(eq, axis=1)
        out[start:stop] = np.where(valid[start:stop], rank, _BIG)
    out.sort(axis=1)
    return out


def _pad(relevant: Sequence[np.ndarray]) -> np.ndarray:
    """List of index arrays -> [n, M] int64, valid first, -1 padding."""
    rel = [np.asarray(r, dtype=np.int64).reshape(-1) for r in relevant]
    M = max((r.size for r in rel), default=0)
    idx = np.full((len(rel), M), -1, dtype=np.int64)
    for i, r in enumerate(rel):
        idx[i, : r.size] = r
    return idx


def ranks_of_relevant(
    scores: np.ndarray, relevant: Sequence[np.ndarray], *, block_size: int = 256
) -> list[np.ndarray]:
    """Sorted 1-based ranks of each query's relevant columns (tie rule: see module doc).

    scores: [nq, nc]; relevant[i]: column indices relevant to query i (may be empty).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be 2-D")
    nq, nc = scores.shape
    if len(relevant) != nq:
        raise ValueError(f"{len(relevant)} relevance lists for {nq} queries")
    idx = _pad(relevant)
    m = np.array([np.size(r) for r in relevant], dtype=np.int64)
    if idx.size:
        flat = idx[np.arange(idx.shape[1])[None, :] < m[:, None]]
        if flat.size and (flat.min() < 0 or flat.max() >= nc):
            raise ValueError("relevant column index out of range")
        srt = np.sort(np.where(idx >= 0, idx, _BIG), axis=1)
        if np.any((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] != _BIG)):
            raise ValueError("duplicate relevant column index")
    ranks = _ranks_padded(scores, idx, block_size)
    return [ranks[i, : m[i]].copy() for i in range(nq)]


def _per_query(ranks: np.ndarray, m: np.ndarray, k: int):
    """Vectorised AP, R@k, RD from _ranks_padded output (every m >= 1)."""
    if m.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    valid = np.arange(ranks.shape[1])[None, :] < m[:, None]
    r = np.where(valid, ranks, 1).astype(np.float64)
    ap = np.where(valid, np.arange(1, ranks.shape[1] + 1) / r, 0.0).sum(1) / m
    rec = np.count_nonzero(valid & (ranks <= k), axis=1) / m
    rd = (ranks[np.arange(len(m)), m - 1] - ranks[:, 0]).astype(np.float64)
    return ap, rec, rd


@dataclass
class LareqaResult:
    summary: dict
    table: pd.DataFrame
    per_query: pd.DataFrame  # multi setting only, in input query order
    # every setting: one row per (setting, query_lang, passage_lang, evaluated query), in table order
    per_query_all: pd.DataFrame | None = None


def _run_setting(scores, q_rows, c_cols, rel_pad, block_size):
    """Rank queries q_rows against columns c_cols (sorted global indices).

    rel_pad: [nq, M] global relevant columns, -1 padding.
    Returns (kept query rows, padded ranks, relevant counts, n_skipped).
    """
    n_total = scores.shape[1]
    local = np.full(n_total + 1, -1, dtype=np.int64)  # last slot maps padding -1
    local[c_cols] = np.arange(c_cols.size)
    loc = local[rel_pad[q_rows]]
    m = np.count_nonzero(loc >= 0, axis=1)
    keep = m > 0
    kept, loc, m = q_rows[keep], loc[keep], m[keep]
    skipped = int(q_rows.size - kept.size)
    if kept.size == 0:
        return kept, np.zeros((0, 0), dtype=np.int64), m, skipped
    # valid entries first, width = max count
    loc = np.sort(np.where(loc >= 0, loc, _BIG), axis=1)[:, : m.max()]
    loc[loc == _BIG] = -1
    if c_cols.size == n_total:
        sub = scores[kept]  # row copy of one query language
    else:
        sub = scores[np.ix_(kept, c_cols)]
    return kept, _ranks_padded(sub, loc, block_size), m, skipped


TABLE_COLUMNS = ["setting", "query_lang", "passage_lang", "n_queries", "n_skipped", "map", "recall",
                 "rank_distance"]
PER_QUERY_COLUMNS = ["setting", "query_lang", "passage_lang", "query_index", "qid", "ap", "recall", "rank_distance"]


@dataclass
class _Cell:
    """One setting's queries of one language against its candidates: the evaluated queries' AP, R@k, RD."""

    setting: str
    query_lang: str
    passage_lang: str
    kept: np.ndarray  # evaluated query rows
    skipped: int  # queries without a relevant candidate in the cell
    ap: np.ndarray
    recall: np.ndarray
    rd: np.ndarray

    def row(self) -> dict:
        return {"setting": self.setting, "query_lang": self.query_lang, "passage_lang": self.passage_lang,
                "n_queries": int(self.kept.size), "n_skipped": self.skipped, "map": nan_mean(self.ap),
                "recall": nan_mean(self.recall),
                "rank_distance": nan_mean(self.rd) if self.setting == "multi" else float("nan")}

    def per_query(self, q_qid) -> pd.DataFrame:
        return pd.DataFrame({
            "setting": self.setting, "query_lang": self.query_lang, "passage_lang": self.passage_lang,
            "query_index": self.kept, "qid": [q_qid[i] for i in self.kept], "ap": self.ap, "recall": self.recall,
            "rank_distance": self.rd if self.setting == "multi" else np.full(self.kept.size, np.nan),
        })


def _multi_per_query(multi: list[_Cell], q_qid, q_lang) -> pd.DataFrame:
    """The multi setting's queries in input query order."""
    kept = np.concatenate([c.kept for c in multi]) if multi else np.zeros(0, dtype=np.int64)
    order = np.argsort(kept, kind="stable")
    ap, rec, rd = (np.concatenate([getattr(c, name) for c in multi])[order] if multi else np.zeros(0)
                   for name in ("ap", "recall", "rd"))
    kept = kept[order]
    return pd.DataFrame({
        "query_index": kept, "qid": [q_qid[i] for i in kept], "query_lang": [q_lang[i] for i in kept],
        "ap": ap, "recall": rec, "rank_distance": rd, "setting": "multi", "passage_lang": "all",
    })


def _summary(table: pd.DataFrame, per_query: pd.DataFrame, ks: dict) -> dict:
    """Macro averages over the cells of each setting (multi_micro: over the multi queries) and query counts."""
    def part(s):
        return table[table["setting"] == s]

    return {
        "map": {**{s: nan_mean(part(s)["map"]) for s in LAREQA_SETTINGS}, "multi_micro": nan_mean(per_query["ap"])},
        "recall": {f"{s}_r{ks[s]}": nan_mean(part(s)["recall"]) for s in LAREQA_SETTINGS},
        "rank_distance": nan_mean(part("multi")["rank_distance"]),
        "n_queries": {s: int(part(s)["n_queries"].sum()) for s in LAREQA_SETTINGS},
    }


def evaluate_pool(
    scores: np.ndarray,
    q_lang: Sequence[str],
    q_qid: Sequence[str],
    c_lang: Sequence[str],
    c_qids: Sequence[Sequence[str]],
    *,
    mono_k: int = 1,
    cross_k: int = 1,
    multi_k: int = 10,
    block_size: int = 256,
) -> LareqaResult:
    """Mono / cross / multi LAReQA metrics for one multilingual pool (see module doc)."""
    scores, q_lang, q_qid, c_lang = pool_arrays(scores, q_lang, q_qid, c_lang, c_qids)
    relevant = relevant_columns(c_qids)
    rel_pad = _pad([relevant.get(qid, []) for qid in q_qid])
    q_rows = {x: np.flatnonzero(q_lang == x) for x in set(q_lang)}
    ks = {"mono": mono_k, "cross": cross_k, "multi": multi_k}
    done = []
    for setting, x, y, cols in cells(q_lang, c_lang):
        kept, ranks, m, skipped = _run_setting(scores, q_rows[x], cols, rel_pad, block_size)
        done.append(_Cell(setting, x, y, kept, skipped, *_per_query(ranks, m, ks[setting])))
    table = pd.DataFrame([c.row() for c in done], columns=TABLE_COLUMNS)
    per_query = _multi_per_query([c for c in done if c.setting == "multi"], q_qid, q_lang)
    per_query_all = pd.concat([c.per_query(q_qid) for c in done], ignore_index=True) if done else \
        pd.DataFrame(columns=PER_QUERY_COLUMNS)
    per_query_all["query_index"] = per_query_all["query_index"].astype(np.int64)
    return LareqaResult(summary=_summary(table, per_query, ks), table=table, per_query=per_query,
                        per_query_all=per_query_all)
