"""Several processes on one stage (DDP under `accelerate launch`) that give one process's result.

What has to hold for N ranks to compute what one process computes (tests/core/test_distributed.py):
- GRI scoring: each rank takes a contiguous share of the length-sorted forget and retain sets; the
  accumulated gradients are summed across ranks before |.| and the ratio, so every rank holds the
  whole-set scores and selects the same mask.
- Unlearning: the Trainer's DDP averages the selected values' gradients over ranks before the
  step, so a step's global batch is `config.batch_size` (each rank `batch_size / N`); the retain
  batch is one global batch of the shared seeded stream, each rank taking its slice; token-mean
  losses divide by the batch's global token count, scaled by N to undo DDP's averaging.
- Noise, NPO's reference, the privacy probes and the decision to stop run alike on every rank
  (same seed, same weights), so no rank needs to tell another.
Without an initialised process group every function here is the single-process identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from datasets import Dataset


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(dataset: Dataset) -> Dataset:
    """This rank's contiguous share (all of it with one process)."""
    rank, world = rank_and_world()
    return dataset if world == 1 else dataset.shard(num_shards=world, index=rank, contiguous=True)


def sum_across_ranks_(tensors) -> None:
    """In place: every tensor becomes its sum over ranks (identical on every rank afterwards)."""
    if rank_and_world()[1] > 1:
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def global_token_scale(count: torch.Tensor) -> torch.Tensor:
    """The divisor that turns this rank's summed token loss into its share of the global token
    mean under DDP's gradient averaging: global count / N (the local count with one process)."""
    _, world = rank_and_world()
    if world == 1:
        return count
    total = count.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world
