"""Worker of tests/test_st_sampler.py's two-process run (torchrun, gloo on CPU).

SentenceTransformerTrainer trains the tiny model for a few steps with the hybrid sampler; every rank
writes the (query, positive, negative) texts of each batch the trainer collated for it, in order.
Usage: torchrun --nproc-per-node=2 tests/st_ddp_worker.py BASE PAIRS.parquet OUT STEPS PER_DEVICE SEED
"""
import json
import sys
from pathlib import Path

import pandas as pd
import torch.distributed as dist
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from hybrid_ir.st_sampler import TEXT_COLUMNS, make_batch_sampler, pairs_dataset


class Recording:
    """The trainer's collator, noting the texts of every batch it collates."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __getattr__(self, name):
        return getattr(self.collator, name)

    def __call__(self, features):
        self.batches.append([[f[c] for c in TEXT_COLUMNS] for f in features])
        return self.collator(features)


def main(base, pairs_path, out, steps, per_device, seed):
    pairs = pd.read_parquet(pairs_path)
    transformer = Transformer(base, max_seq_length=16, model_kwargs={"add_pooling_layer": False},
                              processor_kwargs={"fix_mistral_regex": False})
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(out) / "trainer"), max_steps=steps, per_device_train_batch_size=per_device,
        batch_sampler=make_batch_sampler(pairs, "hybrid", seed=seed, cross_pairing="per_batch"),
        save_strategy="no", report_to="none", seed=seed, use_cpu=True, ddp_backend="gloo",
        dataloader_pin_memory=False, disable_tqdm=True)
    loss = CachedMultipleNegativesRankingLoss(model, mini_batch_size=per_device, gather_across_devices=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs_dataset(pairs), loss=loss)
    trainer.data_collator = recording = Recording(trainer.data_collator)
    trainer.train()
    rank, world = dist.get_rank(), dist.get_world_size()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"world_size": world, "batches": recording.batches}))


if __name__ == "__main__":
    base, pairs_path, out, steps, per_device, seed = sys.argv[1:]
    main(base, pairs_path, out, int(steps), int(per_device), int(seed))
