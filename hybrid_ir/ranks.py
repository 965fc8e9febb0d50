"""Where a process sits among the ranks of a torchrun (torch-free: the single-process default costs no import)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """Where this process sits: rank, world size and its device ("cpu" or "cuda:N")."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (a no-op in one process)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
