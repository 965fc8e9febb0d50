"""A LAReQA pool: queries and candidates of several languages, each query with its question id, each
candidate with the question ids it answers. What hybrid_ir.metrics, .trec and .bias share about it: its
metadata as string arrays, the relevance map and the cells of the three settings, in one order."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pool_arrays(scores, q_lang: Sequence[str], q_qid: Sequence[str], c_lang: Sequence[str],
                c_qids: Sequence[Sequence[str]]):
    """(scores [nq, nc], q_lang, q_qid, c_lang as object arrays of str); ValueError if the lengths disagree."""
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError("scores must be 2-D")
    q_lang, q_qid, c_lang = (np.asarray([str(x) for x in v], dtype=object) for v in (q_lang, q_qid, c_lang))
    nq, nc = scores.shape
    if not len(q_lang) == len(q_qid) == nq or not len(c_lang) == len(c_qids) == nc:
        raise ValueError(f"pool metadata does not match the scores [{nq}, {nc}]: {len(q_lang)} query languages, "
                         f"{len(q_qid)} query ids, {len(c_lang)} candidate languages, {len(c_qids)} answer lists")
    return scores, q_lang, q_qid, c_lang


def relevant_columns(c_qids: Sequence[Sequence[str]]) -> dict[str, list[int]]:
    """Question id -> the candidate columns answering it, ascending (a candidate relevant to a query shares
    its question id)."""
    out: dict[str, list[int]] = {}
    for col, ids in enumerate(c_qids):
        for qid in sorted(set(map(str, ids))):
            out.setdefault(qid, []).append(col)
    return out


def cells(q_lang: np.ndarray, c_lang: np.ndarray):
    """(setting, query lang, passage lang, candidate columns) of every cell: mono per query language L
    (candidates in L), cross per ordered pair X != Y (queries in X, candidates in Y), multi per query
    language (every candidate)."""
    q_langs, c_langs = sorted(set(q_lang)), sorted(set(c_lang))
    for x in q_langs:
        yield "mono", x, x, np.flatnonzero(c_lang == x)
    for x in q_langs:
        for y in c_langs:
            if y != x:
                yield "cross", x, y, np.flatnonzero(c_lang == y)
    for x in q_langs:
        yield "multi", x, "all", np.arange(c_lang.size)


def nan_mean(x) -> float:
    """Mean ignoring NaN; NaN (no warning) when nothing is left: the macro averages over cells."""
    a = np.asarray(x, dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")
