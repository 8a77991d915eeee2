"""Make only the masked weights trainable, so every other weight stays bit-identical.

Two ways, same maths (identical Adam updates for the selected entries, identical clipping norm):

- "sparse": each tensor holding selected weights is parametrised as `W.index_put(idx, values)`
  with `values` (one entry per selected weight) the only trainable tensor. Gradients and AdamW
  state exist for the selected weights alone, so the training state shrinks with p - what lets
  GRIN fit a 7B model where full fine-tuning does not. Costs one tensor copy per forward.
- "dense": the tensors holding selected weights train whole; a gradient hook zeroes the
  unselected entries. Their gradients and Adam moments are allocated (and stay zero); with
  weight decay 0 AdamW then leaves those entries bit-identical (decay shrinks every element of a
  tensor the optimizer holds, gradient or not, so it must be 0).

Everything outside the mask gets `requires_grad=False`. On exit the parametrisations are folded
back into plain weights and every `requires_grad` flag is restored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize

from grin_core.scoring.mask import Mask
from grin_core.unlearning.unlearn_config import UPDATES


class SelectedValues(nn.Module):
    """Parametrisation: the weight with its selected entries read from a trainable vector."""

    def __init__(self, weight: torch.Tensor, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index)
        self.values = nn.Parameter(weight.detach().reshape(-1)[index].clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.reshape(-1).index_put((self.index,), self.values).view_as(weight)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return model.get_submodule(module_name), attr


@contextmanager
def masked_update(model: nn.Module, mask: Mask | None, update: str = "sparse") -> Iterator[list[torch.Tensor]]:
    """Within the block only masked weights can change; yields the index / mask tensors kept.

    `mask=None` is full-parameter training: every parameter trainable, nothing kept.
    """
    if update not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
    flags = {p: p.requires_grad for p in model.parameters()}
    kept: list[torch.Tensor] = []
    handles, parametrised = [], []
    try:
        for p in model.parameters():
            p.requires_grad_(mask is None)
        for name in mask.selected_tensors() if mask is not None else ():
            module, attr = _owner(model, name)
            param = getattr(module, attr)
            if update == "sparse":
                index = mask.indices(name).to(param.device)
                parametrize.register_parametrization(module, attr, SelectedValues(param, index))
                parametrised.append((module, attr))
                kept.append(index)
            else:
                frozen = (~mask.tensors[name]).to(param.device)
                param.requires_grad_(True)
                handles.append(param.register_hook(lambda grad, frozen=frozen: grad.masked_fill(frozen, 0)))
                kept.append(frozen)
        yield kept
    finally:
        for handle in handles:
            handle.remove()
        for module, attr in parametrised:
            parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
        for p, flag in flags.items():
            p.requires_grad_(flag)


def trainable_elements(model: nn.Module) -> int:
    """Elements of the tensors an optimizer would hold (requires_grad=True)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
