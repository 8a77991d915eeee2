"""Weight fake-quantisation: does the forgetting survive the rounding a deployment applies?

An unlearned model whose forgetting lives in small weight changes can fall back to the original
once its weights are rounded to int8 / int4 (Zhang et al. 2024, "Catastrophic failure of LLM
unlearning via quantization", arXiv 2410.16454). `fake_quantize` simulates weight-only
quantisation the way GPTQ-free deployments do it: per output channel (each row of a Linear weight
(out, in)), symmetric, round to nearest, scale = max|w_row| / (2^(bits-1) - 1), values stored back
in float so the model runs unchanged. No GPU library: plain torch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize


def quantize_tensor(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """A fake-quantised copy of `weight`: per output channel (dim 0; a 1-D tensor is one channel)
    symmetric round-to-nearest onto the integers [-(2^(b-1)-1), 2^(b-1)-1] times the channel's
    scale, in `weight`'s dtype. |w - q(w)| <= scale / 2 elementwise; an all-zero channel stays 0."""
    if not 2 <= bits <= 16:
        raise ValueError("bits must be in 2..16")
    w = weight.detach().float()
    rows = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
    scale = channel_scales(rows, bits).unsqueeze(1)
    qmax = 2 ** (bits - 1) - 1
    divisor = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: 0 / 1 * 0
    q = (rows / divisor).round().clamp(-qmax, qmax) * scale
    return q.reshape(weight.shape).to(weight.dtype)


def channel_scales(rows: torch.Tensor, bits: int) -> torch.Tensor:
    """(out,) float32 per-row scales max|w_row| / (2^(bits-1) - 1) of a (out, in) matrix."""
    return rows.detach().float().abs().amax(dim=1) / (2 ** (bits - 1) - 1)


@torch.no_grad()
def fake_quantize(model_or_tensor: nn.Module | torch.Tensor, bits: int) -> nn.Module | torch.Tensor:
    """A fake-quantised COPY: of a tensor (`quantize_tensor`), or of a model with every nn.Linear's
    weight quantised per output channel (biases, embeddings and norms stay float, as in weight-only
    int8/int4 schemes). The input is never modified. A tied lm_head shares its weight with the
    input embedding in the copy as in the original, so that matrix is quantised for both. A
    parametrised weight (GRUN's orthonormal basis) is computed, not stored: it stays float."""
    if isinstance(model_or_tensor, torch.Tensor):
        return quantize_tensor(model_or_tensor, bits)
    quantised = copy.deepcopy(model_or_tensor)
    done: set[int] = set()
    for module in quantised.modules():
        if isinstance(module, nn.Linear) and not parametrize.is_parametrized(module) and id(module.weight) not in done:
            module.weight.copy_(quantize_tensor(module.weight, bits))
            done.add(id(module.weight))
    return quantised
