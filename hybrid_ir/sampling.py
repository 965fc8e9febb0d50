"""Monolingual, cross-lingual and hybrid batch samplers (arXiv 2408.10536).

One sampler, :class:`HybridBatchSampler`, decides per batch which kind it builds
(monolingual with probability ``mono_ratio``, else cross-lingual), in the spirit
of sentence-transformers' multi-dataset batch sampler; the ``mono`` and ``cross``
variants are the ratios 1.0 and 0.0. Each batch is filled greedily from the
epoch's shuffled qids, skipping (deferring, not dropping) a qid that would put a
duplicate or a false negative into the batch, like sentence-transformers'
``NoDuplicatesBatchSampler``.

An epoch is a pure function of (table, params, seed, epoch): every random choice
comes from ``np.random.default_rng([seed, epoch])``.

Epoch invariants:
  * exactly ``batches_per_epoch == n_qids // batch_size`` batches, each non-empty;
  * each qid at most once per epoch;
  * a batch has ``batch_size`` triplets unless too few of the epoch's remaining
    qids fit it (conflicts, or qids lacking the drawn language): it is then
    shorter. This can only happen near the end of an epoch.
  * degenerate fallbacks keep batches non-empty: if no remaining qid has the drawn
    language (pair), it is redrawn among those some remaining qid has; in a
    hybrid run, if no remaining qid can make the drawn kind at all (a qid in one
    language has no cross-lingual row), the batch takes the other kind.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .pair_index import PairIndex
from .vocab import CROSS_PAIRINGS, VARIANTS

__all__ = [
    "Batch",
    "HybridBatchSampler",
    "BatchStream",
    "shard",
    "make_sampler",
    "REQUIRED_COLUMNS",
    "CROSS_PAIRINGS",
    "SAMPLER_KEYS",
    "VARIANTS",
]

REQUIRED_COLUMNS = ("qid", "query_lang", "passage_lang", "positive_id", "negative_id")
# The sampler params each variant's training reads (its validation batches mix mono and cross batches,
# so every variant reads cross_pairing); dvc.yaml declares the same per train@VARIANT stage.
SAMPLER_KEYS = {"mono": ("cross_pairing",), "cross": ("cross_pairing",), "hybrid": ("mono_ratio", "cross_pairing")}


@dataclass(frozen=True, eq=False)
class Batch:
    """One global batch: ``rows`` are iloc positions into the pair table."""

    kind: str  # "mono" or "cross"
    rows: np.ndarray
    language: str | None  # "L" (mono), "X-Y" (per_batch cross), None (per_triplet)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.language == other.language
            and np.array_equal(self.rows, other.rows)
        )

    __hash__ = None  # mutable-looking array field: not hashable

    def __len__(self) -> int:
        return len(self.rows)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


class HybridBatchSampler:
    """Chooses per batch a monolingual (p = ``mono_ratio``) or cross-lingual batch.

    ``pairs``: one row per (qid, query_lang, passage_lang), or the PairIndex of such rows (a PairStore's
    ``index``); see module docstring.
    ``cross_pairing``: "per_triplet" (each triplet its own random ordered pair
    X != Y) or "per_batch" (one ordered pair for the whole batch).
    """

    def __init__(
        self,
        pairs: pd.DataFrame | PairIndex,
        batch_size: int,
        mono_ratio: float,
        seed: int,
        cross_pairing: str = "per_triplet",
    ):
        if isinstance(pairs, pd.DataFrame):
            missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
            if missing:
                raise ValueError(f"pairs is missing required columns: {missing}")
        elif not isinstance(pairs, PairIndex):
            raise ValueError("pairs must be a pandas DataFrame or a PairIndex")
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
        self.index = pairs if isinstance(pairs, PairIndex) else PairIndex.from_pair_table(pairs)
        self.qids, self.languages = self.index.qids, self.index.languages
        n_l = len(self.languages)
        self._offdiag = np.flatnonzero(~np.eye(n_l, dtype=bool))  # all ordered pairs X != Y, flat

        k = self.index.k  # a qid's languages: each makes a mono row, two or more make cross rows
        if mono_ratio > 0 and not (k >= 1).any():
            raise ValueError("mono_ratio > 0 but pairs has no monolingual rows")
        if mono_ratio < 1 and (n_l < 2 or not (k >= 2).any()):
            raise ValueError(
                "mono_ratio < 1 needs at least 2 languages with cross-lingual rows in pairs"
            )
        # qids usable by at least one enabled kind
        usable = np.zeros(len(self.qids), dtype=bool)
        if mono_ratio > 0:
            usable |= k >= 1
        if mono_ratio < 1:
            usable |= k >= 2
        self._usable = np.flatnonzero(usable)
        self.n_qids = int(len(self._usable))
        if self.batch_size > self.n_qids:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= n_qids ({self.n_qids})")

    @property
    def batches_per_epoch(self) -> int:
        return self.n_qids // self.batch_size

    # -- one epoch -------------------------------------------------------------
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
        deferred = _Deferred(self.index)
        batches = []
        for _ in range(self.batches_per_epoch):
            kind = self._draw_kind(rng, left)
            pair, language = self._draw_languages(kind, rng, left)
            filling = _Filling(self, pair, rng)
            filling.fill(deferred, fresh)
            left = left - self._can_make(filling.used)
            batches.append(Batch(kind=kind, rows=filling.rows(), language=language))
        return batches

    def _can_make(self, qids) -> "_Counts":
        """How many of `qids` can make each kind of batch: the counts behind the fallbacks."""
        mono, pair, cross_any, mono_any = self.index.counts(qids)
        return _Counts(mono=mono, pair=pair, cross_any=cross_any, mono_any=mono_any)

    def _draw_kind(self, rng, left: "_Counts") -> str:
        """Monolingual with probability mono_ratio; the other kind when no remaining qid can make it."""
        kind = "mono" if rng.random() < self.mono_ratio else "cross"
        if kind == "mono" and left.mono_any == 0:
            return "cross"
        if kind == "cross" and left.cross_any == 0:
            return "mono"
        return kind

    def _draw_languages(self, kind: str, rng, left: "_Counts") -> tuple[tuple[int, int] | None, str | None]:
        """(language indices (x, y) of every row, its label); (None, None) when each triplet draws its own pair.

        A language (pair) no remaining qid has is redrawn among those some remaining qid has."""
        n_l = len(self.languages)
        if kind == "mono":
            lang = int(rng.integers(n_l))
            if left.mono[lang] == 0:
                lang = int(rng.choice(np.flatnonzero(left.mono)))
            return (lang, lang), self.languages[lang]
        if self.cross_pairing == "per_batch":
            p = int(self._offdiag[rng.integers(len(self._offdiag))])
            if left.pair[p] == 0:
                p = int(rng.choice(np.flatnonzero(left.pair)))
            x, y = divmod(p, n_l)
            return (x, y), f"{self.languages[x]}-{self.languages[y]}"
        return None, None

    def _row_of(self, q: int, pair: tuple[int, int] | None, rng) -> tuple[int, int]:
        """(row, passage unit) of qid q in the language pair, or (pair None) in a random one of its cross
        pairs; (-1, -1): none."""
        if pair is None:
            avail = self.index.cross_pairs(q)
            if not avail:
                return -1, -1
            pair = divmod(avail[int(rng.integers(len(avail)))], len(self.languages))
        r = self.index.row(q, *pair)
        return (r, self.index.unit(q, pair[1])) if r >= 0 else (-1, -1)


@dataclass(frozen=True)
class _Counts:
    """Qids per language (mono), per flat ordered pair (pair), and able to make any cross / mono batch."""

    mono: np.ndarray
    pair: np.ndarray
    cross_any: int
    mono_any: int

    def __sub__(self, other: "_Counts") -> "_Counts":
        return _Counts(self.mono - other.mono, self.pair - other.pair, self.cross_any - other.cross_any,
                       self.mono_any - other.mono_any)


class _Filling:
    """One batch being filled: a qid joins unless its row would repeat a positive or make a false negative
    (its positive is another row's negative or positive, or its negative another row's positive)."""

    def __init__(self, sampler: HybridBatchSampler, pair, rng):
        self.sampler, self.pair, self.rng = sampler, pair, rng
        self.size = sampler.batch_size
        self._rows: list[int] = []
        self.used: list[int] = []
        self.positives: set[int] = set()
        self.negatives: set[int] = set()

    def offer(self, q: int) -> bool:
        r, unit = self.sampler._row_of(q, self.pair, self.rng)
        if r < 0:
            return False
        p_id, n_id = int(self.sampler.index.pos[unit]), int(self.sampler.index.neg[unit])
        if p_id in self.positives or p_id in self.negatives or n_id in self.positives:
            return False
        self.positives.add(p_id)
        self.negatives.add(n_id)
        self._rows.append(r)
        self.used.append(q)
        return True

    def fill(self, deferred: "_Deferred", fresh) -> None:
        """Offer the deferred qids first (oldest first), then fresh ones in epoch order, until full; the
        refused fresh ones join the deferred."""
        taken = []
        for entry in deferred.candidates(self.pair):
            if len(self._rows) == self.size:
                break
            if self.offer(entry[1]):
                taken.append(entry)
        deferred.remove(taken)
        while len(self._rows) < self.size and (q := next(fresh, None)) is not None:
            if not self.offer(q):
                deferred.add(q)

    def rows(self) -> np.ndarray:
        arr = np.asarray(self._rows, dtype=np.int64)
        arr.setflags(write=False)
        return arr


class _Deferred:
    """The qids refused so far this epoch, oldest first, in one queue per language set.

    A batch with a fixed language (pair) refuses a qid lacking either language without a random draw, and
    a per-triplet cross batch a qid with one language, so only the queues of qids that can join are read,
    merged by age: the same offers, in the same order, as one list, without rereading the whole backlog."""

    def __init__(self, index):
        self.index = index
        self.queues: dict[int, deque] = {}
        self.age = 0

    def add(self, q: int) -> None:
        self.queues.setdefault(int(self.index.mask[q]), deque()).append((self.age, q))
        self.age += 1

    def candidates(self, pair):
        """(age, qid) of the qids that can join a batch of `pair` (None: per-triplet cross), oldest first."""
        if pair is None:
            fits = [d for m, d in self.queues.items() if m & (m - 1)]  # two or more languages
        else:
            need = (1 << pair[0]) | (1 << pair[1])
            fits = [d for m, d in self.queues.items() if m & need == need]
        return heapq.merge(*fits) if len(fits) > 1 else iter(fits[0] if fits else ())

    def remove(self, taken: list[tuple[int, int]]) -> None:
        """Drop the taken entries; the others keep their order."""
        for age, q in taken:
            queue = self.queues[int(self.index.mask[q])]
            kept = []
            while queue[0][0] != age:
                kept.append(queue.popleft())
            queue.popleft()
            queue.extendleft(reversed(kept))


class BatchStream:
    """Endless iterator over batches across epochs 0, 1, ...; resumable by step."""

    def __init__(self, sampler: HybridBatchSampler, start_step: int = 0):
        self.sampler = sampler
        self._cache: tuple[int, list[Batch]] | None = None
        self._set_step(start_step)

    def _set_step(self, step) -> None:
        if not _is_int(step) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        self.step = int(step)

    def _epoch(self, epoch: int) -> list[Batch]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.sampler.epoch_batches(epoch))
        return self._cache[1]

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> Batch:
        epoch, i = divmod(self.step, self.sampler.batches_per_epoch)
        batch = self._epoch(epoch)[i]
        self.step += 1
        return batch

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("state must be a dict with a 'step' key")
        self._set_step(state["step"])


def shard(batch: Batch, rank: int, world_size: int) -> np.ndarray:
    """The contiguous slice of the global batch's rows that DDP ``rank`` takes."""
    if not _is_int(world_size) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if not _is_int(rank) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    n = len(batch.rows)
    if n % world_size:
        raise ValueError(f"batch size {n} is not divisible by world_size {world_size}")
    k = n // world_size
    return batch.rows[rank * k:(rank + 1) * k]


def make_sampler(
    variant: str,
    pairs: pd.DataFrame | PairIndex,
    batch_size: int,
    seed: int,
    mono_ratio: float = 0.5,
    cross_pairing: str = "per_triplet",
) -> HybridBatchSampler:
    """``mono`` -> ratio 1.0, ``cross`` -> 0.0, ``hybrid`` -> ``mono_ratio``."""
    if variant == "mono":
        ratio = 1.0
    elif variant == "cross":
        ratio = 0.0
    elif variant == "hybrid":
        ratio = mono_ratio
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return HybridBatchSampler(pairs, batch_size, ratio, seed, cross_pairing=cross_pairing)
