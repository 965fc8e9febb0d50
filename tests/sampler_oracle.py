"""Test oracle: the sampler as it was before hybrid_ir.pair_index, reading a materialized
(qid x language x language) row table; hybrid_ir.sampling must draw exactly its batches."""
from __future__ import annotations


import numpy as np
import pandas as pd

from hybrid_ir import sampling
from hybrid_ir.sampling import Batch, _Counts, _is_int
from hybrid_ir.vocab import CROSS_PAIRINGS

REQUIRED_COLUMNS = ("qid", "query_lang", "passage_lang", "positive_id", "negative_id")


class MaterializedSampler(sampling.HybridBatchSampler):
    """The sampler before the pair index: a (qid x language x language) row table and one deferred list,
    reread whole per batch; the kind and language draws are the sampler's own (unchanged)."""

    def __init__(
        self,
        pairs: pd.DataFrame,
        batch_size: int,
        mono_ratio: float,
        seed: int,
        cross_pairing: str = "per_triplet",
    ):
        if not isinstance(pairs, pd.DataFrame):
            raise ValueError("pairs must be a pandas DataFrame")
        missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs is missing required columns: {missing}")
        if not isinstance(mono_ratio, (int, float, np.floating, np.integer)) or isinstance(
            mono_ratio, bool
        ):
            raise ValueError(f"mono_ratio must be a number, got {mono_ratio!r}")
        mono_ratio = float(mono_ratio)
        if not 0.0 <= mono_ratio <= 1.0:  # also rejects NaN
            raise ValueError(f"mono_ratio must be in [0, 1], got {mono_ratio}")
        if cross_pairing not in CROSS_PAIRINGS:
            raise ValueError(f"cross_pairing must be one of {CROSS_PAIRINGS}, got {cross_pairing!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")

        self.mono_ratio = mono_ratio
        self.cross_pairing = cross_pairing
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self._index_table(pairs)

        if mono_ratio > 0 and not self.has_mono.any():
            raise ValueError("mono_ratio > 0 but pairs has no monolingual rows")
        if mono_ratio < 1 and (len(self.languages) < 2 or not self.has_cross.any()):
            raise ValueError(
                "mono_ratio < 1 needs at least 2 languages with cross-lingual rows in pairs"
            )
        # qids usable by at least one enabled kind
        usable = np.zeros(len(self.qids), dtype=bool)
        if mono_ratio > 0:
            usable |= self.has_mono.any(axis=1)
        if mono_ratio < 1:
            usable |= self.has_cross.reshape(len(self.qids), -1).any(axis=1)
        self._usable = np.flatnonzero(usable)
        self.n_qids = int(len(self._usable))
        if self.batch_size > self.n_qids:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= n_qids ({self.n_qids})")

    # -- table indexing -------------------------------------------------------
    def _index_table(self, pairs: pd.DataFrame) -> None:
        qid = pairs["qid"].astype(str).to_numpy()
        ql = pairs["query_lang"].astype(str).to_numpy()
        pl = pairs["passage_lang"].astype(str).to_numpy()
        self.qids = np.array(sorted(set(qid)), dtype=object)
        self.languages = sorted(set(ql) | set(pl))
        q_idx = pd.Index(self.qids).get_indexer(qid)
        lang_index = pd.Index(self.languages)
        qi, pi = lang_index.get_indexer(ql), lang_index.get_indexer(pl)
        n_q, n_l = len(self.qids), len(self.languages)

        # row[q, X, Y]: iloc position of the (qid, X, Y) row, -1 if absent
        row = np.full((n_q, n_l, n_l), -1, dtype=np.int64)
        flat = (q_idx * n_l + qi) * n_l + pi
        if len(np.unique(flat)) != len(flat):
            raise ValueError("pairs has duplicate (qid, query_lang, passage_lang) rows")
        row.reshape(-1)[flat] = np.arange(len(pairs))
        self._row = row
        diag = np.eye(n_l, dtype=bool)
        self.has_mono = row[:, diag] >= 0  # (n_q, n_l)
        self.has_cross = (row >= 0) & ~diag  # (n_q, n_l, n_l)
        self._offdiag = np.flatnonzero(~diag)  # all ordered pairs X != Y, flat
        # each qid's available cross pairs as flat X * n_l + Y
        self._cross_pairs = [np.flatnonzero(self.has_cross[i]) for i in range(n_q)]

        # positive / negative ids as shared integer codes
        codes, _ = pd.factorize(
            pd.concat([pairs["positive_id"], pairs["negative_id"]], ignore_index=True).astype(str)
        )
        self._pos = codes[: len(pairs)]
        self._neg = codes[len(pairs):]

    def epoch_batches(self, epoch: int) -> list[Batch]:
        """The batches of ``epoch``; a pure function of (table, params, seed, epoch).

        Per batch: draw its kind, then its language (pair), then fill it from the deferred and the
        fresh qids; what the batch used leaves the counts the fallbacks read."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = self._usable[rng.permutation(self.n_qids)]
        left = self._can_make(order)
        fresh = iter(order.tolist())
        deferred: list[int] = []
        batches = []
        for _ in range(self.batches_per_epoch):
            kind = self._draw_kind(rng, left)
            pair, language = self._draw_languages(kind, rng, left)
            filling = _Filling(self, pair, rng)
            deferred = filling.fill(deferred, fresh)
            left = left - self._can_make(filling.used)
            batches.append(Batch(kind=kind, rows=filling.rows(), language=language))
        return batches

    def _can_make(self, qids) -> "_Counts":
        """How many of `qids` can make each kind of batch: the counts behind the fallbacks."""
        u = np.asarray(qids, dtype=np.int64)
        cross = self.has_cross[u].reshape(len(u), -1)
        return _Counts(mono=self.has_mono[u].sum(axis=0), pair=cross.sum(axis=0),
                       cross_any=int(cross.any(axis=1).sum()), mono_any=int(self.has_mono[u].any(axis=1).sum()))

    def _row_of(self, q: int, pair: tuple[int, int] | None, rng) -> int:
        """qid q's row in the language pair, or (pair None) in a random one of its cross pairs; -1: none."""
        if pair is not None:
            return int(self._row[q, pair[0], pair[1]])
        avail = self._cross_pairs[q]
        if len(avail) == 0:
            return -1
        x, y = divmod(int(avail[rng.integers(len(avail))]), len(self.languages))
        return int(self._row[q, x, y])


class _Filling(sampling._Filling):
    """The batch filling of before: one list of deferred qids, reread whole for every batch."""

    def offer(self, q: int) -> bool:
        r = self.sampler._row_of(q, self.pair, self.rng)
        if r < 0:
            return False
        p_id, n_id = int(self.sampler._pos[r]), int(self.sampler._neg[r])
        if p_id in self.positives or p_id in self.negatives or n_id in self.positives:
            return False
        self.positives.add(p_id)
        self.negatives.add(n_id)
        self._rows.append(r)
        self.used.append(q)
        return True

    def fill(self, deferred: list[int], fresh) -> list[int]:
        """Offer the deferred qids first, then fresh ones in epoch order, until full; return the new deferred."""
        still: list[int] = []
        for j, q in enumerate(deferred):
            if len(self._rows) == self.size:
                return still + deferred[j:]
            if not self.offer(q):
                still.append(q)
        while len(self._rows) < self.size and (q := next(fresh, None)) is not None:
            if not self.offer(q):
                still.append(q)
        return still
