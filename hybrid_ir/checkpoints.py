"""What a training run keeps and puts back: torch RNG states, trainable weights, early stopping (the best
weights) and the checkpoint that resumes an interrupted run exactly."""
from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
from pathlib import Path

import torch

from .io import atomic_path


def rng_state(device: str) -> dict:
    """The torch RNG state of the CPU and, on CUDA, of `device`."""
    state = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: str) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def trainable_state(model) -> dict:
    """A CPU copy of the trainable weights."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def load_weights(model, weights: dict) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


class EarlyStopping:
    """Keeps the trainable weights of the lowest validation loss; stop after `patience` evaluations
    without a new best (0: never stop early)."""

    def __init__(self, patience: int):
        self.patience, self.best_step, self.best_loss, self.bad, self.weights = patience, None, math.inf, 0, None

    def update(self, loss: float, step: int, model=None) -> bool:
        """Record the loss after `step` optimizer steps (`model`: keep its weights if best); True = stop."""
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.bad = loss, step, 0
            if model is not None:
                self.weights = trainable_state(model)
        else:
            self.bad += 1
        return self.patience > 0 and self.bad >= self.patience

    def state_dict(self) -> dict:
        return {"best_step": self.best_step, "best_loss": self.best_loss, "bad": self.bad, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.best_step, self.best_loss, self.bad = state["best_step"], state["best_loss"], state["bad"]
        self.weights = state["weights"]


def fingerprint(*parts) -> str:
    """A short key of JSON-able parts: a checkpoint is resumed only by a run with the same key."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


PLAIN = (int, float, bool, str, type(None))  # with tensors, dicts, lists and tuples: what torch.load
                                            # reads with weights_only=True (no code runs on load)


def check_plain(obj, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first value that is not a tensor, plain scalar or plain container."""
    if isinstance(obj, torch.Tensor) or type(obj) in PLAIN:
        return
    if type(obj) is dict:
        for k, v in obj.items():
            check_plain(k, f"{where} key")
            check_plain(v, f"{where}[{k!r}]")
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    else:
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}: a checkpoint holds "
                        "only tensors and plain containers, so it loads with weights_only=True")


class Checkpointer:
    """Trainable weights, optimiser, schedule, grad scaler, every rank's torch RNG, sampler position and
    the early-stopping state (best weights included); only resumed if the run matches. All of it tensors
    and plain containers, read back with weights_only=True: the directory may be a shared filesystem, and
    a pickled object from there would run code in the job. No numpy or Python RNG state: the samplers
    draw from np.random.default_rng([seed, epoch]), a function of the stream position."""

    def __init__(self, directory: Path, key: str):
        self.dir, self.key = Path(directory), key
        self.file = self.dir / "checkpoint.pt"

    def save(self, step, model, optimizer, scheduler, stream, *, scaler, stopper, rng_states):
        state = {
            "key": self.key, "step": step, "weights": trainable_state(model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "stream": stream.state_dict(), "rng": rng_states,
            "early_stopping": stopper.state_dict(),
        }
        check_plain(state)
        with atomic_path(self.file) as tmp:
            torch.save(state, tmp)

    def load(self, model, optimizer, scheduler, stream, *, scaler, stopper, rank=0, device="cpu") -> int:
        """Restore everything from a matching checkpoint; return its step (0: none)."""
        if not self.file.exists():
            return 0
        try:
            state = torch.load(self.file, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise RuntimeError(f"{self.file} holds more than tensors and plain containers: not unpickling it "
                               f"(delete it to train from step 0)\n{exc}") from None
        if state.get("key") != self.key:
            return 0  # written by a run with other params or data
        load_weights(model, state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        stream.load_state_dict(state["stream"])
        stopper.load_state_dict(state["early_stopping"])
        set_rng_state(state["rng"][rank], device)
        return int(state["step"])

    def clear(self):
        shutil.rmtree(self.dir, ignore_errors=True)
