"""The pair table's rows without the table: each (question id, query language, passage language) row is
composed from the languages a question id has.

The pairs stage's table holds, per question id with k languages, its k x k rows sorted by (qid,
query_lang, passage_lang), and a row's positive and negative are those of its passage-language unit
(:func:`hybrid_ir.pairs.build_pair_table`). So a row's position and its passage unit follow from one
bit mask of languages per question id: memory grows with the units (question x language), not with the
k x k combinations. :class:`PairIndex` is what the sampler reads.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MAX_LANGUAGES = 32  # one uint32 bit mask per question id


class PairIndex:
    """Rows of the virtual pair table: ``row(q, x, y)`` and its passage unit, per-language counts.

    ``qids``: sorted question ids; ``languages``: sorted language codes; ``mask[q]``: bit l set when
    question q has language l; ``pos`` / ``neg``: integer codes of each unit's positive / negative id, units
    in (question, language) order (equal codes: equal ids, positives and negatives share the codes).
    ``positions``: the table's row position of each virtual row when the table was not in sorted order.
    """

    def __init__(self, qids, languages, mask, pos, neg, positions=None):
        if len(languages) > MAX_LANGUAGES:
            raise ValueError(f"at most {MAX_LANGUAGES} languages, got {len(languages)}")
        self.qids = np.asarray(qids)
        self.languages = list(languages)
        self.mask = np.asarray(mask, dtype=np.uint32)
        self.k = np.bitwise_count(self.mask).astype(np.int16)
        k = self.k.astype(np.int64)
        self.unit_offset = np.concatenate([[0], np.cumsum(k)[:-1]]).astype(np.int64)
        self.row_offset = np.concatenate([[0], np.cumsum(k * k)[:-1]]).astype(np.int64)
        self.n_rows = int((k * k).sum())
        if len(pos) != int(k.sum()) or len(neg) != len(pos):
            raise ValueError("pos and neg need one code per (question, language) unit")
        self.pos, self.neg = _small(pos), _small(neg)
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)

    @classmethod
    def from_units(cls, qid, lang, positive_id, negative_id) -> "PairIndex":
        """From one entry per (question id, language) unit, in any order."""
        units = pd.DataFrame({"qid": np.asarray(qid).astype(str), "lang": np.asarray(lang).astype(str),
                              "p": np.asarray(positive_id).astype(str), "n": np.asarray(negative_id).astype(str)})
        units = units.sort_values(["qid", "lang"], kind="stable", ignore_index=True)
        qids, q_idx = np.unique(units["qid"].to_numpy(), return_inverse=True)
        languages, l_idx = np.unique(units["lang"].to_numpy(), return_inverse=True)
        if (np.diff(q_idx * len(languages) + l_idx) <= 0).any():
            raise ValueError("duplicate (qid, language) units")
        mask = np.zeros(len(qids), dtype=np.uint32)
        np.bitwise_or.at(mask, q_idx, (np.uint32(1) << l_idx.astype(np.uint32)))
        codes, uniques = pd.factorize(pd.concat([units["p"], units["n"]], ignore_index=True))
        index = cls(qids.astype(object), [str(x) for x in languages], mask, codes[: len(units)], codes[len(units):])
        index.id_values = pd.Index(uniques)  # code -> id
        return index

    @classmethod
    def from_pair_table(cls, pairs: pd.DataFrame) -> "PairIndex":
        """From a materialized pair table (any row order): every question's k x k rows, each row's positive
        and negative those of its passage language."""
        qid = pairs["qid"].astype(str).to_numpy()
        ql = pairs["query_lang"].astype(str).to_numpy()
        pl = pairs["passage_lang"].astype(str).to_numpy()
        mono = np.flatnonzero(ql == pl)
        index = cls.from_units(qid[mono], pl[mono], pairs["positive_id"].to_numpy()[mono],
                               pairs["negative_id"].to_numpy()[mono])
        q = pd.Index(index.qids).get_indexer(qid)
        lang = pd.Index(index.languages)
        x, y = lang.get_indexer(ql), lang.get_indexer(pl)
        if (q < 0).any() or (x < 0).any() or (y < 0).any():
            raise ValueError("pairs has a row whose question id lacks its monolingual row in that language")
        virtual = index.rows(q, x, y)
        if (virtual < 0).any() or len(np.unique(virtual)) != len(virtual) or len(virtual) != index.n_rows:
            raise ValueError("pairs must hold each (qid, query_lang, passage_lang) of a question's languages once")
        unit, ids = index.units(q, y), index.id_values
        n = len(pairs)
        for column, codes in (("positive_id", index.pos), ("negative_id", index.neg)):
            if (ids.get_indexer(pairs[column].astype(str).to_numpy()) != codes[unit]).any():
                raise ValueError(f"pairs rows of one question and passage language disagree on {column}")
        if not (virtual == np.arange(n)).all():
            positions = np.empty(n, dtype=np.int64)
            positions[virtual] = np.arange(n)
            index.positions = positions
        return index

    # -- one question (python ints: the sampler's inner loop) ------------------------------------------
    def _rank(self, q: int, lang: int) -> int:
        """Position of `lang` among question q's languages; -1 when q lacks it."""
        m = int(self.mask[q])
        return (m & ((1 << lang) - 1)).bit_count() if m >> lang & 1 else -1

    def row(self, q: int, x: int, y: int) -> int:
        """Table position of (q, languages x, y); -1 when q lacks either language."""
        rx, ry = self._rank(q, x), self._rank(q, y)
        if rx < 0 or ry < 0:
            return -1
        r = int(self.row_offset[q]) + rx * int(self.k[q]) + ry
        return r if self.positions is None else int(self.positions[r])

    def unit(self, q: int, lang: int) -> int:
        """Index of unit (q, lang) into pos / neg (q must have lang)."""
        return int(self.unit_offset[q]) + self._rank(q, lang)

    def cross_pairs(self, q: int) -> list[int]:
        """q's ordered language pairs x != y as flat x * n_languages + y, ascending."""
        m, n = int(self.mask[q]), len(self.languages)
        langs = [lang for lang in range(n) if m >> lang & 1]
        return [x * n + y for x in langs for y in langs if x != y]

    # -- many questions (vectorized) ---------------------------------------------------------------------
    def bits(self, qids) -> np.ndarray:
        """(len(qids), n_languages) 0/1 matrix of the questions' languages."""
        shifts = np.arange(len(self.languages), dtype=np.uint32)
        return ((self.mask[np.asarray(qids, dtype=np.int64)][:, None] >> shifts) & 1).astype(np.uint8)

    def rows(self, q, x, y) -> np.ndarray:
        """Virtual (sorted-table) positions of many (q, x, y); -1 where q lacks x or y."""
        q, x, y = (np.asarray(a, dtype=np.int64) for a in (q, x, y))
        m = self.mask[q].astype(np.int64)
        has = ((m >> x) & 1).astype(bool) & ((m >> y) & 1).astype(bool)
        rx = np.bitwise_count(m & ((1 << x) - 1))
        ry = np.bitwise_count(m & ((1 << y) - 1))
        return np.where(has, self.row_offset[q] + rx * self.k[q].astype(np.int64) + ry, -1)

    def units(self, q, lang) -> np.ndarray:
        q, lang = np.asarray(q, dtype=np.int64), np.asarray(lang, dtype=np.int64)
        return self.unit_offset[q] + np.bitwise_count(self.mask[q].astype(np.int64) & ((1 << lang) - 1))

    def counts(self, qids, chunk: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Of `qids`: how many have each language, each ordered pair x != y (flat, diagonal 0), any pair,
        any language."""
        qids = np.asarray(qids, dtype=np.int64)
        n = len(self.languages)
        mono, pair = np.zeros(n, dtype=np.int64), np.zeros((n, n), dtype=np.int64)
        for start in range(0, len(qids), chunk):
            b = self.bits(qids[start:start + chunk]).astype(np.int64)
            mono += b.sum(axis=0)
            pair += b.T @ b
        np.fill_diagonal(pair, 0)
        k = self.k[qids]
        return mono, pair.reshape(-1), int((k >= 2).sum()), int((k >= 1).sum())


def _small(codes) -> np.ndarray:
    """Integer codes as int32 where they fit (half the memory of pandas' int64 codes)."""
    codes = np.asarray(codes)
    return codes.astype(np.int32) if len(codes) == 0 or int(codes.max()) < 2**31 - 1 else codes.astype(np.int64)
