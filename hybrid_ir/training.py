"""InfoNCE fine-tuning of the dual encoder: the training loop, validation, DDP; the loss and GradCache are in
hybrid_ir.loss, checkpoints and early stopping in hybrid_ir.checkpoints."""
from __future__ import annotations

import datetime
import math
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from . import distributed as ddp
from .checkpoints import Checkpointer, EarlyStopping, fingerprint, load_weights, rng_state
from .encoder import embed_texts, load_encoder
from .errors import ParamsError
from .io import atomic_path, write_csv, write_json
from .loss import GradCache, info_nce_loss
from .model_dir import save_model, training_card
from .pair_store import PairStore, as_store
from .precision import autocast
from .precision import resolve as resolve_precision
from .sampling import SAMPLER_KEYS, Batch, BatchStream, make_sampler, shard
from .vocab import SCHEDULES

VAL_STREAM = 7919  # second seed word of the validation question draw (the sampler's is the epoch)


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
    if getattr(model, "pooler", None) is not None:  # embed() pools hidden states: the pooler is unused
        for p in model.pooler.parameters():
            p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def held_out(qids, n_questions: int, seed: int) -> set:
    """The `n_questions` question ids drawn with `seed` (of all `qids`) that validation holds out whole."""
    qids = np.array(sorted(set(map(str, qids))))
    if n_questions == 0:
        return set()
    if n_questions >= len(qids):
        raise ParamsError(f"train.val_questions: {n_questions} held out of {len(qids)} question ids "
                          "leaves none for training")
    return set(np.random.default_rng([seed, VAL_STREAM]).choice(qids, n_questions, replace=False))


def split_validation(pairs, n_questions: int, seed: int):
    """(training part, validation part) of a PairStore or a pair-table DataFrame, split by held_out()."""
    if isinstance(pairs, PairStore):
        mask = pairs.questions["qid"].astype(str).isin(held_out(pairs.questions["qid"], n_questions, seed))
        return pairs.subset(~mask.to_numpy()), pairs.subset(mask.to_numpy())
    mask = pairs["qid"].astype(str).isin(held_out(pairs["qid"].unique(), n_questions, seed)).to_numpy()
    return pairs[~mask].reset_index(drop=True), pairs[mask].reset_index(drop=True)


def validation_batches(val: PairStore, batch_size: int, n_batches: int, seed: int,
                       cross_pairing: str) -> list[Batch]:
    """`n_batches` fixed batches over the held-out questions, alternately monolingual and cross-lingual."""
    size = min(batch_size, val.n_questions)
    by_kind = []
    for kind, count in (("mono", (n_batches + 1) // 2), ("cross", n_batches // 2)):
        sampler, got, epoch = make_sampler(kind, val.index, size, seed, cross_pairing=cross_pairing), [], 0
        while len(got) < count:
            got += sampler.epoch_batches(epoch)
            epoch += 1
        by_kind.append(got[:count])
    return [by_kind[i % 2][i // 2] for i in range(n_batches)]


def embed_rows(model, tokenizer, store: PairStore, rows, model_params, pooling, bucket_size=0):
    """(queries, positives, negatives) embeddings of the store's pair rows `rows` (`store`: anything with
    PairStore.texts_of).

    bucket_size: length-sorted sub-batches per forward pass (encoder.embed_texts); 0: one padded pass each.
    """
    queries, positives, negatives = store.texts_of(rows)
    length = model_params.max_length
    q = embed_texts(model, tokenizer, queries, model_params.query_prefix, length, pooling, bucket_size)
    d = embed_texts(model, tokenizer, positives + negatives, model_params.passage_prefix,
                    length, pooling, bucket_size)
    return q, d[: len(rows)], d[len(rows):]


def validation_loss(model, tokenizer, store, batches, *, train, model_params, pooling, device) -> float:
    """Mean loss over the fixed validation batches, dropout off, no gradients."""
    was_training = model.training
    model.eval()
    losses = []
    try:
        with torch.no_grad():
            for batch in batches:
                with autocast(device, train.precision):
                    q, pos, neg = embed_rows(model, tokenizer, store, batch.rows, model_params, pooling,
                                              train.bucket_size)
                losses.append(float(info_nce_loss(q, pos, neg, train.temperature, train.loss_form)))
    finally:
        model.train(was_training)
    return float(np.mean(losses))


def train_step(net, tokenizer, store, rows, *, train, model_params, pooling, device, ctx, scaler) -> torch.Tensor:
    """Forward and backward of one step on this rank's rows; returns the (local) loss, detached.

    The loss is over the global batch: every rank's passages are gathered with their gradients. With
    grad_accum_steps > 1 the rows are encoded in chunks (loss.GradCache: same loss and gradients as one pass).
    """
    def encode(chunk):
        with autocast(device, train.precision):
            return embed_rows(net, tokenizer, store, chunk, model_params, pooling, train.bucket_size)

    def loss(q, pos, neg):
        return info_nce_loss(q, ddp.gather_with_grad(pos, ctx), ddp.gather_with_grad(neg, ctx),
                             train.temperature, train.loss_form, offset=ctx.rank * len(rows))

    cache = GradCache(encode, loss, chunks=train.grad_accum_steps, device=device,
                      backward=lambda value: scaler.scale(value).backward(), no_sync=lambda: ddp.no_sync(net, ctx))
    return cache.step(rows)


def run_record(variant: str, frame: pd.DataFrame, resumed_from_step: int, processes: int) -> dict:
    """How a training run went, not what it made: wall times, host and resume history."""
    return {
        "variant": variant, "host": socket.gethostname(), "processes": processes,
        "finished_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resumed_from_step": resumed_from_step, "step_seconds_total": round(float(frame["seconds"].sum()), 3),
        "step_seconds": [round(float(s), 4) for s in frame["seconds"]],
    }


def local_rows(batch: Batch, ctx) -> np.ndarray:
    """This rank's shard of the global batch (a short end-of-epoch batch is cut to a multiple of the
    world size under DDP)."""
    if not ctx.distributed:
        return batch.rows
    keep = len(batch.rows) - len(batch.rows) % ctx.world_size
    return shard(Batch(batch.kind, batch.rows[:keep], batch.language), ctx.rank, ctx.world_size)


@dataclass
class TrainingData:
    """One variant's pairs: training pairs and their endless batch stream, held-out pairs and their fixed
    batches (batch rows are rows of their store)."""

    train: PairStore
    val: PairStore
    stream: BatchStream
    val_batches: list[Batch]
    knobs: dict  # the sampler params this variant reads (SAMPLER_KEYS)


def training_data(pairs: PairStore, variant: str, train, sampler_params) -> TrainingData:
    """Hold out train.val_questions question ids, then the variant's sampler over the rest."""
    train_part, val_part = split_validation(pairs, train.val_questions, train.seed)
    if train_part.n_questions < train.batch_size:
        raise ParamsError(f"train.val_questions: {train.val_questions} held out leaves "
                          f"{train_part.n_questions} training question ids, fewer than batch_size "
                          f"{train.batch_size}")
    knobs = {key: getattr(sampler_params, key) for key in SAMPLER_KEYS[variant]}  # only what this variant reads
    stream = BatchStream(make_sampler(variant, train_part.index, train.batch_size, train.seed, **knobs))
    val_batches = validation_batches(val_part, train.batch_size, train.val_batches, train.seed,
                                     knobs["cross_pairing"]) if train.val_questions else []
    return TrainingData(train_part, val_part, stream, val_batches, knobs)


def optimisation(model, train, device: str):
    """(AdamW without weight decay on biases and norms, warm-up then train.schedule, grad scaler for fp16)."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=train.lr,
    )
    scheduler = get_scheduler(SCHEDULES[train.schedule], optimizer, num_warmup_steps=train.warmup_steps,
                              num_training_steps=train.steps)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=train.precision == "fp16")
    return optimizer, scheduler, scaler


def run_key(variant: str, train, knobs: dict, model_params, pooling: str, pairs: PairStore) -> str:
    """What a checkpoint must match to be resumed: params, pooling and the pair rows."""
    return fingerprint(variant, asdict(train), knobs, asdict(model_params), pooling, pairs.n_rows,
                       pairs.fingerprint())


class TrainingRun:
    """One rank's run: the model and its optimisation state, the data, early stopping and checkpoints.

    resume(), then run() the optimizer steps left, then (rank 0) write() the model directory.
    """

    def __init__(self, model, tokenizer, data: TrainingData, *, train, model_params, pooling: str, ctx,
                 checkpoint_dir: Path, key: str):
        self.model, self.tokenizer, self.data, self.train, self.ctx = model, tokenizer, data, train, ctx
        self.model_params, self.pooling = model_params, pooling
        self.step_args = dict(train=train, model_params=model_params, pooling=pooling, device=ctx.device)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler, self.scaler = optimisation(model, train, ctx.device)
        self.stopper = EarlyStopping(train.patience)
        self.ckpt = Checkpointer(checkpoint_dir, key)
        self.log_file = Path(checkpoint_dir) / "log.csv"
        self.net = model  # DDP-wrapped by resume()

    def resume(self) -> tuple[int, list[dict]]:
        """(steps already done, their log rows) from a matching checkpoint; (0, []) without one."""
        start = self.ckpt.load(self.model, self.optimizer, self.scheduler, self.data.stream, scaler=self.scaler,
                               stopper=self.stopper, rank=self.ctx.rank, device=self.ctx.device)
        if len(set(ddp.gather_objects(start, self.ctx))) > 1:
            raise RuntimeError(f"ranks resumed from different steps: {self.ckpt.dir} must be on a shared filesystem")
        self.net = ddp.wrap(self.model, self.ctx)
        log = pd.read_csv(self.log_file, float_precision="round_trip").to_dict("records") \
            if start and self.log_file.exists() else []
        return start, [r for r in log if r["step"] < start]

    def run(self, start: int, log: list[dict], bar) -> bool:
        """Optimizer steps start..train.steps - 1, a log row each into `log`; True if it stopped early."""
        for step in range(start, self.train.steps):
            t0 = time.perf_counter()
            row = self.optimizer_step(step)
            done = step + 1
            stopped_early = self.validate(row, done) if self.validation_due(done) else False
            row["seconds"] = time.perf_counter() - t0
            log.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", kind=row["kind"])
            if stopped_early:
                return True
            if done % self.train.checkpoint_every == 0 and done < self.train.steps:
                self.save_checkpoint(done, log)
        return False

    def validation_due(self, done: int) -> bool:
        """Whether the validation loss is taken after `done` steps: every train.eval_every and at the last."""
        return bool(self.data.val_batches) and (done % self.train.eval_every == 0 or done == self.train.steps)

    def optimizer_step(self, step: int) -> dict:
        """Draw the next batch, one forward/backward (train_step), clip, step; the step's log row."""
        batch, train, ctx = next(self.data.stream), self.train, self.ctx
        self.optimizer.zero_grad(set_to_none=True)
        loss = train_step(self.net, self.tokenizer, self.data.train, local_rows(batch, ctx), ctx=ctx,
                          scaler=self.scaler, **self.step_args)
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.trainable, train.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return {
            "step": step, "loss": ddp.mean_across(float(loss), ctx), "lr": self.scheduler.get_last_lr()[0],
            "val_loss": math.nan, "kind": batch.kind, "language": batch.language or "",
            "batch_size": len(batch.rows), "seconds": 0.0,
        }

    def validate(self, row: dict, done: int) -> bool:
        """Rank 0's validation loss into the row and early stopping; True if training stops before the end."""
        main = self.ctx.is_main
        val = validation_loss(self.model, self.tokenizer, self.data.val, self.data.val_batches,
                              **self.step_args) if main else None
        row["val_loss"] = ddp.broadcast_float(val, self.ctx)
        stop = self.stopper.update(row["val_loss"], done, self.model if main else None)
        return stop and done < self.train.steps

    def save_checkpoint(self, done: int, log: list[dict]) -> None:
        rng_states = ddp.gather_objects(rng_state(self.ctx.device), self.ctx)
        if self.ctx.is_main:
            self.ckpt.save(done, self.model, self.optimizer, self.scheduler, self.data.stream, scaler=self.scaler,
                           stopper=self.stopper, rng_states=rng_states)
            write_csv(self.log_file, pd.DataFrame(log))

    def write(self, out_dir: Path, variant: str, frame: pd.DataFrame, *, sampler_params, n_trainable: int,
              stopped_early: bool) -> None:
        """The model directory (rank 0): the best validation step's weights, card, step log and summary."""
        if self.stopper.weights is not None:
            load_weights(self.model, self.stopper.weights)  # the best validation step's weights are the ones saved
        self.model.eval()
        train, model_params, pooling = self.train, self.model_params, self.pooling
        validated = bool(self.data.val_batches)
        best = (self.stopper.best_step, self.stopper.best_loss) if validated else None
        with atomic_path(out_dir, is_dir=True) as tmp:
            save_model(tmp, self.model, self.tokenizer, model_params=model_params, pooling=pooling, card=training_card(
                variant, train=train, sampler_params=sampler_params, model_params=model_params, pooling=pooling,
                train_pairs=self.data.train, steps_run=len(frame), best=best))
            frame.drop(columns="seconds").to_csv(tmp / "train_log.csv", index=False)
            write_json(tmp / "train_summary.json", {
                "variant": variant, "steps": train.steps, "steps_run": len(frame),
                "trainable_parameters": n_trainable, "final_loss": float(np.mean(frame["loss"].tail(10))),
                "mono_batches": int((frame["kind"] == "mono").sum()), "pooling": pooling,
                "best_step": self.stopper.best_step if validated else len(frame),
                "best_val_loss": self.stopper.best_loss if validated else None, "stopped_early": stopped_early,
                "train_questions": self.data.train.n_questions, "val_questions": train.val_questions,
                "processes": self.ctx.world_size, "grad_accum_steps": train.grad_accum_steps,
                "precision": train.precision, "loss_form": train.loss_form,
            })


def train_variant(
    base_dir: Path, out_dir: Path, pairs, variant: str, *, train, sampler_params, model_params,
    pooling: str, checkpoint_dir: Path, run_log: Path | None = None, progress: bool = True, device: str = "cpu",
    ctx=None,
) -> pd.DataFrame:
    """Fine-tune the base model with one sampling variant; rank 0 writes the model and its step log to out_dir.

    `pairs`: a PairStore (the pairs stage's product) or a materialized pair-table DataFrame.

    out_dir holds only what is a function of the inputs (weights, step log, summary), so identical runs give
    identical bytes; wall times and resume history go to `run_log`, which no stage depends on.
    `ctx` (hybrid_ir.distributed.Context) places this process in a DDP run; None: one process on `device`.
    """
    ctx = ctx or ddp.Context(device=device)
    # auto -> bf16 | fp32
    train = replace(train, precision=resolve_precision(train.precision, ctx.device, "train.precision"))
    torch.manual_seed(train.seed + ctx.rank)  # dropout differs between ranks, the weights do not
    model, tokenizer = load_encoder(base_dir, device=ctx.device)
    model.train()
    n_trainable = freeze(model, train.freeze_embeddings, train.freeze_layers)
    pairs = as_store(pairs)
    data = training_data(pairs, variant, train, sampler_params)
    run = TrainingRun(model, tokenizer, data, train=train, model_params=model_params, pooling=pooling, ctx=ctx,
                      checkpoint_dir=checkpoint_dir, key=run_key(variant, train, data.knobs, model_params, pooling,
                                                                 pairs))
    start, log = run.resume()
    with tqdm(total=train.steps, initial=start, desc=f"train {variant}", unit="step",
              disable=not (progress and ctx.is_main)) as bar:
        stopped_early = run.run(start, log, bar)
    frame = pd.DataFrame(log)
    if not ctx.is_main:
        return frame
    run.write(out_dir, variant, frame, sampler_params=sampler_params, n_trainable=n_trainable,
              stopped_early=stopped_early)
    if run_log is not None:
        write_json(run_log, run_record(variant, frame, start, ctx.world_size))
    run.ckpt.clear()
    return frame
