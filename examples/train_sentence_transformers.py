"""Hybrid batches in sentence-transformers' own trainer, evaluated with the pipeline's LAReQA code.

After `dvc repro eval_sets` (it builds the pair store, the base model mE5-small and the evaluation pools
under data/):

    python examples/train_sentence_transformers.py --steps 20                  # one process
    torchrun --nproc-per-node=2 examples/train_sentence_transformers.py        # DDP, gloo on CPU

Settings come from params.yaml: `model` (prefixes as column prompts, pooling, max length), `train`
(batch size = the global batch, lr, weight decay, warm-up and schedule, temperature, clipping, frozen
layers, precision, held-out validation questions, seed), `sampler` and `encode`. The training rows are
the train stage's (`training.split_validation`), so the batches are those of `stages/train.py VARIANT`
with the same params. Unlike the train stage: the loss is CachedMultipleNegativesRankingLoss (InfoNCE
over in-batch and hard negatives, scale 1 / temperature, GradCache mini-batches of batch_size /
grad_accum_steps; `train.loss_form: paper` has no counterpart), no early stopping, the trainer's AdamW.

Writes to OUT (default data/examples/st_VARIANT): `model/` (a sentence-transformers directory whose
root is a transformers directory: `hybrid_ir.encoder.load_encoder` reads it), `train_log.csv` (loss,
learning rate, batch kind and language per step) and `metrics.json` (`hybrid_ir.metrics.evaluate_pool`
per evaluation set, as in reports/metrics/VARIANT.json).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import pandas as pd
import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

from hybrid_ir.base_models import resolve_pooling
from hybrid_ir.encoder import encode, load_encoder
from hybrid_ir.io import atomic_path, write_csv, write_json
from hybrid_ir.metrics import evaluate_pool
from hybrid_ir.pair_store import PairStore
from hybrid_ir.params import load_params
from hybrid_ir.precision import resolve as resolve_precision
from hybrid_ir.sampling import BatchStream, make_sampler
from hybrid_ir.st_sampler import column_prompts, make_batch_sampler, pairs_dataset
from hybrid_ir.stage import DATASETS
from hybrid_ir.training import SCHEDULES, freeze, split_validation
from hybrid_ir.vocab import VARIANTS


def st_model(base: Path, model_params) -> SentenceTransformer:
    """The base transformers directory as Transformer + Pooling + Normalize, the pipeline's encoder."""
    # pooling reads the hidden states, as in the pipeline: no pooler layer
    transformer = Transformer(str(base), max_seq_length=model_params.max_length,
                              model_kwargs={"add_pooling_layer": False}, processor_kwargs={"fix_mistral_regex": False})
    pooling = Pooling(transformer.get_embedding_dimension(), resolve_pooling(model_params))
    return SentenceTransformer(modules=[transformer, pooling, Normalize()])


def train(params, pairs: pd.DataFrame, base: Path, variant: str, steps: int, out: Path):
    """Train with SentenceTransformerTrainer and the hybrid sampler; returns (trainer, model)."""
    tp, sp, mp = params.train, params.sampler, params.model
    world = int(os.environ.get("WORLD_SIZE", 1))  # torchrun's
    if tp.batch_size % world:
        raise SystemExit(f"train.batch_size {tp.batch_size} is not divisible by {world} processes")
    per_device, cuda = tp.batch_size // world, torch.cuda.is_available()
    precision = resolve_precision(tp.precision, "cuda" if cuda else "cpu", "train.precision")
    model = st_model(base, mp)
    freeze(model[0].model, tp.freeze_embeddings, tp.freeze_layers)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"), max_steps=steps, per_device_train_batch_size=per_device,
        learning_rate=tp.lr, weight_decay=tp.weight_decay, warmup_steps=tp.warmup_steps,
        lr_scheduler_type=SCHEDULES[tp.schedule], max_grad_norm=tp.max_grad_norm, seed=tp.seed,
        bf16=precision == "bf16", fp16=precision == "fp16",
        batch_sampler=make_batch_sampler(pairs, variant, seed=tp.seed, mono_ratio=sp.mono_ratio,
                                         cross_pairing=sp.cross_pairing),
        prompts=column_prompts(mp), logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=not cuda, dataloader_pin_memory=False, ddp_backend="gloo" if world > 1 and not cuda else None,
    )
    loss = CachedMultipleNegativesRankingLoss(model, scale=1.0 / tp.temperature, gather_across_devices=world > 1,
                                              mini_batch_size=math.ceil(per_device / tp.grad_accum_steps))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs_dataset(pairs), loss=loss)
    trainer.train()
    return trainer, model


def step_log(trainer, pairs: pd.DataFrame, variant: str, params) -> pd.DataFrame:
    """Loss and learning rate per step (the trainer's log) beside the kind and language of its batch."""
    tp, sp = params.train, params.sampler
    logged = pd.DataFrame([r for r in trainer.state.log_history if "loss" in r and "step" in r])
    stream = BatchStream(make_sampler(variant, pairs, tp.batch_size, tp.seed, sp.mono_ratio, sp.cross_pairing))
    batches = [next(stream) for _ in range(trainer.state.global_step)]
    return pd.DataFrame({
        "step": range(len(batches)), "loss": logged["loss"].to_numpy(), "lr": logged["learning_rate"].to_numpy(),
        "kind": [b.kind for b in batches], "language": [b.language or "" for b in batches],
        "batch_size": [len(b.rows) for b in batches],
    })


def evaluate(model_dir: Path, eval_dir: Path, params) -> dict:
    """LAReQA metrics of the saved model, encoded and scored as by the encode and evaluate stages."""
    mp, ep = params.model, params.encode
    model, tokenizer = load_encoder(model_dir)
    metrics = {}
    for dataset in DATASETS:
        q = pd.read_parquet(eval_dir / dataset / "queries.parquet")
        c = pd.read_parquet(eval_dir / dataset / "candidates.parquet")
        bf16 = resolve_precision(ep.precision, "cpu", "encode.precision") == "bf16"
        kw = dict(pooling=resolve_pooling(mp), batch_size=ep.batch_size, max_length=mp.max_length, bf16=bf16,
                  progress=False)
        q_vec = encode(model, tokenizer, q["text"].tolist(), prefix=mp.query_prefix, **kw)
        c_vec = encode(model, tokenizer, c["text"].tolist(), prefix=mp.passage_prefix,
                       second_segments=c["context"].tolist() if ep.candidate_context else None, **kw)
        metrics[dataset] = evaluate_pool(q_vec @ c_vec.T, q["lang"], q["qid"], c["lang"], c["qids"]).summary
    return metrics


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="hybrid", choices=VARIANTS)
    ap.add_argument("--steps", type=int, help="optimizer steps (default: train.steps)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data", help="holds pairs/store, models/base/ and eval/")
    ap.add_argument("--out", help="default: DATA/examples/st_VARIANT")
    a = ap.parse_args(argv)
    params, data = load_params(a.params), Path(a.data)
    out = Path(a.out) if a.out else data / "examples" / f"st_{a.variant}"
    pairs = PairStore.read(data / "pairs" / "store").table()  # sentence-transformers reads rows
    train_pairs, _ = split_validation(pairs, params.train.val_questions, params.train.seed)
    trainer, model = train(params, train_pairs, data / "models" / "base", a.variant, a.steps or params.train.steps, out)
    if not trainer.is_world_process_zero():
        return
    with atomic_path(out / "model", is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
    write_csv(out / "train_log.csv", step_log(trainer, train_pairs, a.variant, params))
    metrics = evaluate(out / "model", data / "eval", params)
    write_json(out / "metrics.json", metrics)
    for dataset, m in metrics.items():
        print(f"{dataset}: mAP mono {m['map']['mono']:.4f} cross {m['map']['cross']:.4f} "
              f"multi {m['map']['multi']:.4f}, rank distance {m['rank_distance']:.1f}")


if __name__ == "__main__":
    main()
