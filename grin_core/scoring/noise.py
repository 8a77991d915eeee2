"""Noise injection: perturb the selected weights with N(0, sigma^2) before masked fine-tuning.

GRIN shakes the selected weights out of the forget set's basin so the optimiser does not just
re-find it. Noise is drawn on the CPU from one seeded `torch.Generator`, tensor by tensor in mask
order, so the same (mask, sigma2, seed) gives the same perturbation on any device; every weight
outside the mask is left untouched.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from grin_core.scoring.mask import Mask


@torch.no_grad()
def inject_noise(model: nn.Module, mask: Mask, sigma2: float = 1e-3, seed: int = 0) -> int:
    """Add N(0, sigma2) noise in place to the weights selected by `mask`; returns how many."""
    if sigma2 < 0:
        raise ValueError("sigma2 must be >= 0")
    params = dict(model.named_parameters())
    missing = [n for n in mask.tensors if n not in params]
    if missing:
        raise KeyError(f"mask names parameters the model lacks: {missing[:3]}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    touched = 0
    for name in mask.tensors:
        index = mask.indices(name)
        if index.numel() == 0:
            continue
        param = params[name]
        noise = torch.randn(index.numel(), generator=generator, dtype=torch.float32) * math.sqrt(sigma2)
        flat = param.view(-1)
        index = index.to(param.device)
        flat[index] = (flat[index].float() + noise.to(param.device)).to(param.dtype)
        touched += index.numel()
    return touched
