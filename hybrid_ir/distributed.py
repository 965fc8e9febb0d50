"""Multiple processes: the torchrun launch, process-group setup, work split and the collectives the loss needs.

With ``train.processes`` > 1 the train stage re-runs itself under ``torch.distributed.run`` (torchrun).
Every rank draws the same global batch and takes its ``sampling.shard``; embeddings are gathered across
ranks with their gradients, so the loss is over the global batch, and DistributedDataParallel averages
the gradients. Backend: NCCL on CUDA, gloo on CPU. Rank 0 writes the outputs and the checkpoints.

The MT stage (``translate.processes``) and the MIRACL encode stage (``miracl.processes``) launch the same
way and split their work round-robin (:func:`owns`): each rank computes the batches or shards it owns,
writes them, and rank 0 merges after a barrier. The split never changes a batch, so the outputs
are the bytes one process writes.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys

import torch
import torch.distributed as dist

from .errors import ParamsError
from .ranks import Context
from .precision import device_for


WAIT = datetime.timedelta(hours=24)


def in_worker() -> bool:
    """True inside a process started by torchrun (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch_command(processes: int, script, argv) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            str(script), *argv]


def launch(processes: int, script, argv, device: str = "cpu", key: str = "train.processes") -> int:
    """Run `script argv` in `processes` torchrun workers on this machine; return their exit status."""
    if device.startswith("cuda") and processes > torch.cuda.device_count():
        raise ParamsError(f"{key}: {processes} processes but only {torch.cuda.device_count()} GPU(s)")
    return subprocess.run(launch_command(processes, script, argv)).returncode


def setup(preferred: str = "auto") -> Context:
    """The single-process context, or (inside torchrun) join the process group."""
    device = device_for(preferred)
    if not in_worker() or int(os.environ["WORLD_SIZE"]) == 1:
        return Context(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        # the machine's cores are shared by the local workers
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        backend = "gloo"
    # a rank that finishes its share waits for the others at a barrier: allow a long share (default 30 min)
    dist.init_process_group(backend, timeout=WAIT)
    return Context(rank, world, local_rank, device)


def owns(index: int, ctx: Context) -> bool:
    """Whether this rank does work item `index` (round-robin, so every rank gets every world-th item)."""
    return index % ctx.world_size == ctx.rank


def teardown(ctx: Context) -> None:
    """Leave the process group (no barrier: after a failure the other ranks may never reach it)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, ctx: Context):
    """DistributedDataParallel around the model when there is more than one process."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.local_rank] if ctx.device.startswith("cuda") else None
    # buffers (position ids) are constants: synced once at init, not at every forward
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


def no_sync(net, ctx: Context):
    """Skip the gradient all-reduce (all but the last backward of a step)."""
    return net.no_sync() if ctx.distributed else contextlib.nullcontext()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every rank's gradient and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather_with_grad(x: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Every rank's rows of `x`, in rank order, differentiable; `x` itself in a single process."""
    return _GatherWithGrad.apply(x) if ctx.distributed else x


def mean_across(value: float, ctx: Context) -> float:
    if not ctx.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def broadcast_float(value: float | None, ctx: Context) -> float:
    """Rank 0's value on every rank."""
    if not ctx.distributed:
        return float(value)
    t = torch.tensor([float(value) if ctx.is_main else 0.0], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, src=0)
    return float(t.item())


def gather_objects(obj, ctx: Context) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
