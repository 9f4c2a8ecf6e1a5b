"""Training across processes with torch DistributedDataParallel: gloo on CPUs, NCCL on GPUs.

Two ways to start: ``mlwfcalc train --ddp N`` spawns N processes on this machine
(:func:`launch`), or ``torchrun --nproc-per-node N -m mlwfcalc.cli train ...`` (any number of
machines) sets the ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` variables that :func:`init_from_environment`
reads. Every process holds the whole dataset and computes the same global batch indices; each takes
its share (:func:`shard`), and the loss is normalised by counts summed over all processes
(:func:`global_sum`), so the averaged gradient is the one-process gradient of the whole batch and
the weights follow a one-process run to float rounding. Process 0 alone writes checkpoints, logs
and models.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """This process's place: ``rank`` of ``world`` processes (1 and 0 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True on the process that writes files."""
        return self.rank == 0


def context() -> Context:
    """The current process group's rank and size, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    return Context()


def init_from_environment(device: torch.device) -> Context:
    """Join the process group that torchrun (or :func:`launch`) described in the environment, if any."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return context()


def shard(indices, ctx: Context):
    """This process's share of a global batch (every ``world``-th index from ``rank``)."""
    return indices[ctx.rank::ctx.world]


def global_sum(value: float | torch.Tensor, ctx: Context) -> torch.Tensor:
    """``value`` summed over all processes (a float64 tensor; no gradient)."""
    total = torch.as_tensor(value, dtype=torch.float64).detach().clone()
    if ctx.world > 1:
        dist.all_reduce(total)
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(function, processes: int, *args) -> None:
    """Run ``function(*args)`` in ``processes`` local processes forming one process group (localhost)."""
    import torch.multiprocessing as mp

    port = _free_port()
    mp.spawn(_entry, args=(processes, port, function, args), nprocs=processes, join=True)


def _entry(rank: int, world: int, port: int, function, args) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        function(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
