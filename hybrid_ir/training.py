"""InfoNCE fine-tuning of the dual encoder, with checkpoints and exact resume."""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .encoder import embed, load_encoder, tokenize
from .io import atomic_path, write_csv, write_json
from .sampling import BatchStream, make_sampler


def info_nce_loss(q: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy over each query's positive against all in-batch positives and hard negatives.

    Inputs are L2-normalised, so q @ d.T are cosine scores; row i's target is column i.
    """
    docs = torch.cat([pos, neg], dim=0)
    scores = (q @ docs.T).float() / temperature
    return F.cross_entropy(scores, torch.arange(q.shape[0], device=q.device))


def freeze(model, embeddings: bool, layers: int) -> int:
    """Freeze the embeddings and the bottom `layers` transformer layers; return trainable count."""
    if embeddings:
        for p in model.embeddings.parameters():
            p.requires_grad_(False)
    blocks = model.encoder.layer
    if layers > len(blocks):
        raise ValueError(f"train.freeze_layers: the model has only {len(blocks)} layers, got {layers}")
    for block in blocks[:layers]:
        for p in block.parameters():
            p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def autocast(device: str, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def fingerprint(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Checkpointer:
    """Trainable weights, optimiser, schedule, RNG and sampler position; only resumed if the run matches."""

    def __init__(self, directory: Path, key: str):
        self.dir, self.key = Path(directory), key
        self.file = self.dir / "checkpoint.pt"

    def save(self, step, model, optimizer, scheduler, stream):
        trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        state = {
            "key": self.key, "step": step, "weights": trainable,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "stream": stream.state_dict(), "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(self.file) as tmp:
            torch.save(state, tmp)

    def load(self, model, optimizer, scheduler, stream) -> int:
        if not self.file.exists():
            return 0
        state = torch.load(self.file, weights_only=False)
        if state.get("key") != self.key:
            return 0  # written by a run with other params or data
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["weights"].items():
                params[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stream.load_state_dict(state["stream"])
        torch.set_rng_state(state["torch_rng"])
        return int(state["step"])

    def clear(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def train_variant(
    base_dir: Path, out_dir: Path, pairs: pd.DataFrame, variant: str, *, train, sampler, model_params,
    pooling: str, checkpoint_dir: Path, progress: bool = True, device: str = "cpu",
) -> pd.DataFrame:
    """Fine-tune the base model with one sampling variant; write the model and its step log to out_dir."""
    torch.manual_seed(train.seed)
    model, tokenizer = load_encoder(base_dir, device=device)
    model.train()
    n_trainable = freeze(model, train.freeze_embeddings, train.freeze_layers)
    batches = make_sampler(variant, pairs, train.batch_size, train.seed, sampler.mono_ratio, sampler.cross_pairing)
    stream = BatchStream(batches)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=train.lr,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, train.warmup_steps, train.steps)
    key = fingerprint(variant, asdict(train), asdict(sampler), asdict(model_params), pooling, len(pairs),
                      pd.util.hash_pandas_object(pairs[["qid", "query_lang", "passage_lang"]]).sum())
    ckpt = Checkpointer(checkpoint_dir, key)
    start = ckpt.load(model, optimizer, scheduler, stream)
    log_file = Path(checkpoint_dir) / "log.csv"
    log = pd.read_csv(log_file).to_dict("records") if start and log_file.exists() else []
    log = [r for r in log if r["step"] < start]
    queries, positives, negatives = (pairs[c].to_numpy() for c in ("query", "positive", "negative"))
    bar = tqdm(total=train.steps, initial=start, desc=f"train {variant}", unit="step", disable=not progress)
    for step in range(start, train.steps):
        t0 = time.perf_counter()
        batch = next(stream)
        rows = batch.rows
        q_in = tokenize(tokenizer, list(queries[rows]), model_params.query_prefix, model_params.max_length)
        d_in = tokenize(tokenizer, list(positives[rows]) + list(negatives[rows]), model_params.passage_prefix,
                        model_params.max_length)
        q_in, d_in = ({k: v.to(device) for k, v in x.items()} for x in (q_in, d_in))
        with autocast(device, train.bf16):
            q = embed(model, q_in, pooling)
            d = embed(model, d_in, pooling)
            loss = info_nce_loss(q, d[: len(rows)], d[len(rows):], train.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        log.append({
            "step": step, "loss": float(loss.detach()), "lr": scheduler.get_last_lr()[0], "kind": batch.kind,
            "language": batch.language or "", "batch_size": len(rows), "seconds": time.perf_counter() - t0,
        })
        bar.update(1)
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}", kind=batch.kind)
        if (step + 1) % train.checkpoint_every == 0 and step + 1 < train.steps:
            ckpt.save(step + 1, model, optimizer, scheduler, stream)
            write_csv(log_file, pd.DataFrame(log))
    bar.close()
    frame = pd.DataFrame(log)
    model.eval()
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        frame.to_csv(tmp / "train_log.csv", index=False)
        write_json(tmp / "train_summary.json", {
            "variant": variant, "steps": train.steps, "trainable_parameters": n_trainable,
            "resumed_from_step": start, "final_loss": float(np.mean(frame["loss"].tail(10))),
            "mono_batches": int((frame["kind"] == "mono").sum()), "pooling": pooling,
        })
    ckpt.clear()
    return frame
