"""Training throughput of a target model and its model FLOPs utilisation (MFU).

Model FLOPs as in PaLM (Chowdhery et al. 2022, appendix B) and nanoGPT's `estimate_mfu`
(karpathy/nanoGPT, model.py): a token of a length-T sequence costs 6N + 12·L·d·T FLOPs for
forward and backward, N the parameters that multiply activations (the input embedding is a
lookup, not a matmul; a separate LM head is a matmul), L layers of width d, attention counted
in full as both do. Only real tokens count: padding is waste, and MFU should show it. MFU is those
FLOPs per second over the chip's dense bf16 peak from its data sheet.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

# Dense bf16 tensor-core peaks (data sheets, SXM parts); matched by name as torch reports it.
PEAK_BF16_FLOPS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


def peak_bf16_flops(device_name: str) -> float | None:
    """The data-sheet bf16 peak of a CUDA device by its name; None for a CPU or an unknown chip."""
    return next((peak for chip, peak in PEAK_BF16_FLOPS.items() if chip in device_name), None)


def matmul_params(model) -> int:
    """Parameters that multiply activations: all but an untied input embedding."""
    embedding = model.get_input_embeddings().weight
    tied = any(p is embedding for p in model.get_output_embeddings().parameters())
    return sum(p.numel() for p in model.parameters() if tied or p is not embedding)


def train_flops(lengths: Iterable[int], n_params: int, n_layers: int, hidden: int) -> float:
    """Forward+backward model FLOPs of one pass over sequences of these token lengths."""
    return float(sum(6 * n_params * t + 12 * n_layers * hidden * t * t for t in lengths))


def training_throughput(
    history: Sequence[Mapping],
    lengths: Sequence[int],
    n_params: int,
    n_layers: int,
    hidden: int,
    device_name: str,
    batch_size: int | None = None,
) -> dict:
    """Tokens/s and MFU of a training run from its per-epoch seconds (`train_model`'s history).

    The median epoch after the first: the first pays kernel loading and allocator warm-up."""
    seconds = [e["seconds"] for e in history[1:]] or [e["seconds"] for e in history]
    if not seconds or not lengths:
        return {}
    epoch_s = statistics.median(seconds)
    flops = train_flops(lengths, n_params, n_layers, hidden)
    peak = peak_bf16_flops(device_name)
    achieved = flops / epoch_s
    return {
        "tokens_per_epoch": int(sum(lengths)),
        "epoch_s": round(epoch_s, 3),
        "tokens_per_s": round(sum(lengths) / epoch_s, 1),
        "step_ms": None if batch_size is None else round(1000 * epoch_s / math.ceil(len(lengths) / batch_size), 2),
        "matmul_params": n_params,
        "model_tflops_per_epoch": round(flops / 1e12, 4),
        "model_tflops_per_s": round(achieved / 1e12, 4),
        "device": device_name,
        "peak_bf16_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else round(achieved / peak, 5),
    }
