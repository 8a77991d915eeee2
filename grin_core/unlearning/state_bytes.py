"""How much memory an unlearning method keeps for training, counted from the tensors themselves.

Categories: weights (every parameter and buffer of the model), gradients (every allocated
`.grad`, including the zeroed entries of a masked tensor: they are allocated, so they count),
optimizer (every tensor in the optimizer's state), reference (NPO's stored reference
log-probabilities, or a reference model's weights) and mask (masks / index tensors the trainer
keeps). Each storage is counted once, whole, in the first category that names it.
`StateMeter` samples this right after every optimizer step - when gradients and optimizer state
are both alive - and keeps the peak; on CUDA it also reports `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers import TrainerCallback

CATEGORIES = ("reference", "mask", "optimizer", "gradients", "weights")


@dataclass
class StateBytes:
    weights: int = 0
    gradients: int = 0
    optimizer: int = 0
    reference: int = 0
    mask: int = 0
    cuda_max_allocated: int | None = None

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.reference + self.mask

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _tensors_in(value) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _tensors_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors_in(v)


def measure_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    reference: Iterable[torch.Tensor] = (),
    mask: Iterable[torch.Tensor] = (),
) -> StateBytes:
    """Bytes per category of the tensors a training run holds right now (see module docstring)."""
    sources = {
        "reference": reference,
        "mask": mask,
        "optimizer": _tensors_in(list(optimizer.state.values())) if optimizer is not None else (),
        "gradients": (p.grad for p in model.parameters() if p.grad is not None),
        "weights": (*model.parameters(), *model.buffers()),
    }
    seen: set[tuple[torch.device, int]] = set()
    counts = StateBytes()
    for category in CATEGORIES:
        total = 0
        for tensor in _tensors_in(list(sources[category])):
            storage = tensor.untyped_storage()
            key = (tensor.device, storage.data_ptr())
            if key in seen or storage.nbytes() == 0:
                continue
            seen.add(key)
            total += storage.nbytes()
        setattr(counts, category, total)
    if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters()):
        counts.cuda_max_allocated = torch.cuda.max_memory_allocated()
    return counts


class StateMeter(TrainerCallback):
    """Keeps the peak `measure_state` over training, sampled after each optimizer step."""

    def __init__(self, reference: Iterable[torch.Tensor] = (), mask: Iterable[torch.Tensor] = ()) -> None:
        self.reference, self.mask = list(reference), list(mask)
        self.peak = StateBytes()

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        now = measure_state(model, optimizer, self.reference, self.mask)
        if now.total >= self.peak.total:
            self.peak = now
