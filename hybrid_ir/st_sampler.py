"""The pipeline's mono / cross / hybrid sampler as a sentence-transformers batch sampler.

    args = SentenceTransformerTrainingArguments(..., batch_sampler=make_batch_sampler(pairs, "hybrid", seed=13),
                                                prompts=column_prompts(params.model))
    SentenceTransformerTrainer(model, args, train_dataset=pairs_dataset(pairs), loss=...)

trains on exactly the batches ``hybrid_ir.sampling`` draws for ``pairs`` and ``seed`` (the train stage's
batches when ``pairs`` are its training rows, ``training.split_validation``):

* the dataset holds only the three text columns, in pair-table row order, so a batch index is a
  pair-table row; the question ids, languages and paragraph keys stay in the sampler;
* the trainer's epoch e is the pipeline's epoch e (every draw comes from ``(seed, e)``), and ``len`` is
  the pipeline's batches per epoch;
* several processes (DDP): the global batch is ``per_device_train_batch_size`` x processes triplets,
  one kind and one language (pair). accelerate hands the k-th batch a batch sampler yields to process
  k mod N (``BatchSamplerShard`` without ``split_batches``, the trainer's default), so the sampler yields
  each global batch as its N shards in rank order, the same shards as the train stage
  (``training.local_rows``: ``sampling.shard``, a short batch cut to a multiple of N).
"""
from __future__ import annotations

import pandas as pd
import torch.distributed as dist
from sentence_transformers.base.sampler import DefaultBatchSampler
from torch.utils.data import Sampler

from .distributed import Context
from .sampling import REQUIRED_COLUMNS, VARIANTS, Batch, make_sampler
from .training import local_rows

__all__ = ["TEXT_COLUMNS", "HybridSTBatchSampler", "SamplerFactory", "make_batch_sampler", "pairs_dataset",
           "column_prompts"]

TEXT_COLUMNS = ("query", "positive", "negative")  # (anchor, positive, negative) for the MNRL losses
METADATA_COLUMNS = (*REQUIRED_COLUMNS, "kind", "article", "source", "title")


def pairs_dataset(pairs: pd.DataFrame):
    """The pair table's text columns as a ``datasets.Dataset``, row i = pair-table row i."""
    from datasets import Dataset

    missing = [c for c in TEXT_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs is missing text columns: {missing}")
    return Dataset.from_dict({c: pairs[c].astype(str).tolist() for c in TEXT_COLUMNS})


def column_prompts(model_params) -> dict[str, str]:
    """The trainer's ``prompts``: the query prefix on queries, the passage prefix on both passages."""
    return {"query": model_params.query_prefix, "positive": model_params.passage_prefix,
            "negative": model_params.passage_prefix}


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _EpochRelay(Sampler):
    """The batch sampler's ``sampler``: once accelerate wraps the batch sampler (several processes, or a
    resumed epoch), it calls ``set_epoch`` on ``batch_sampler.sampler``, never on the batch sampler."""

    def __init__(self, owner: "HybridSTBatchSampler", n: int):
        self.owner, self.n = owner, n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.owner.set_epoch(epoch)


class HybridSTBatchSampler(DefaultBatchSampler):
    """``hybrid_ir.sampling``'s batches of ``pairs`` as lists of dataset indices (= pair-table rows).

    ``batch_size`` is the trainer's per-process batch size; the pipeline sampler draws global batches of
    ``batch_size`` x ``world_size`` (None: the process group's size, 1 without one). ``seed`` is the
    sampler's seed (the trainer passes 0 to single-dataset samplers: bind yours with
    :func:`make_batch_sampler`). ``drop_last`` and ``generator`` are unused: the epoch length and every
    draw are the pipeline's.
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None,
                 generator=None, seed: int = 0, *, pairs: pd.DataFrame, variant: str = "hybrid",
                 mono_ratio: float = 0.5, cross_pairing: str = "per_triplet", world_size: int | None = None):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        _check_dataset(dataset, pairs)
        self.world_size = int(world_size or _world_size())
        self.per_process_batch_size = int(batch_size)
        self.hybrid = make_sampler(variant, pairs, batch_size * self.world_size, seed, mono_ratio, cross_pairing)
        self.dataset = dataset
        self.sampler = _EpochRelay(self, len(dataset))
        # None = batches of varying length: accelerate's BatchSamplerShard otherwise drops every group of
        # shards whose last one is shorter than batch_size (a short end-of-epoch batch)
        self.batch_size = None

    def global_batches(self, epoch: int | None = None) -> list[Batch]:
        """The pipeline's global batches (kind, language, rows) of ``epoch`` (default: the current one)."""
        return self.hybrid.epoch_batches(self.epoch if epoch is None else epoch)

    def __iter__(self):
        contexts = [Context(rank=r, world_size=self.world_size) for r in range(self.world_size)]
        for batch in self.global_batches():
            for ctx in contexts:
                yield local_rows(batch, ctx).tolist()

    def __len__(self) -> int:
        return self.hybrid.batches_per_epoch * self.world_size


class SamplerFactory:
    """What ``batch_sampler=`` takes: the trainer calls it with (dataset, batch_size, drop_last,
    valid_label_columns, generator, seed); the pair table, variant and seed are bound here. Picklable, as
    the trainer saves its arguments with its checkpoints."""

    def __init__(self, pairs: pd.DataFrame, variant: str = "hybrid", *, seed: int, mono_ratio: float = 0.5,
                 cross_pairing: str = "per_triplet", world_size: int | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.pairs, self.variant, self.seed = pairs, variant, seed
        self.mono_ratio, self.cross_pairing, self.world_size = mono_ratio, cross_pairing, world_size

    def __call__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None,
                 generator=None, seed: int = 0) -> HybridSTBatchSampler:
        return HybridSTBatchSampler(dataset, batch_size, drop_last, valid_label_columns, generator, self.seed,
                                    pairs=self.pairs, variant=self.variant, mono_ratio=self.mono_ratio,
                                    cross_pairing=self.cross_pairing, world_size=self.world_size)


def make_batch_sampler(pairs: pd.DataFrame, variant: str = "hybrid", *, seed: int, mono_ratio: float = 0.5,
                       cross_pairing: str = "per_triplet", world_size: int | None = None) -> SamplerFactory:
    """``mono`` (ratio 1), ``cross`` (0) or ``hybrid`` (``mono_ratio``) batches of ``pairs``, as
    ``sampling.make_sampler``, for ``SentenceTransformerTrainingArguments(batch_sampler=...)``."""
    return SamplerFactory(pairs, variant, seed=seed, mono_ratio=mono_ratio, cross_pairing=cross_pairing,
                          world_size=world_size)


def _check_dataset(dataset, pairs: pd.DataFrame) -> None:
    """The dataset must be the pair table's rows in order, without the metadata columns."""
    if len(dataset) != len(pairs):
        raise ValueError(f"the dataset has {len(dataset)} rows, the pair table {len(pairs)}: the hybrid sampler "
                         "only samples the dataset of its own pair table (pairs_dataset(pairs); no eval_dataset)")
    names = list(getattr(dataset, "column_names", None) or [])
    leaked = [c for c in names if c in METADATA_COLUMNS]
    if leaked:
        raise ValueError(f"the dataset has metadata columns {leaked}: the collator would tokenize them; "
                         "build it with pairs_dataset(pairs)")
    table = dataset.with_format("arrow") if hasattr(dataset, "with_format") else dataset  # fast column reads
    for c in TEXT_COLUMNS:
        if c in names:
            column = table[c]
            values = column.to_pylist() if hasattr(column, "to_pylist") else list(column)
            if values != pairs[c].astype(str).tolist():
                raise ValueError(f"dataset column {c!r} is not the pair table's, row for row")
