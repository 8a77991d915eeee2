"""Model FLOPs from the tokens a model actually processed, by stage: what a deletion costs, beside seconds.

Wall seconds on shared machines move by a third between runs; FLOPs do not. The convention is the
one of training throughput (benchmarks/throughput.py, after PaLM appendix B and nanoGPT): a token
costs 2N FLOPs forward and 6N forward and backward, N the parameters that multiply activations
(an untied input embedding is a lookup). The attention term (12·L·d·T per token) is left out on
both sides of every ratio here: at these sequence lengths it is a few percent of 6N.

`FlopMeter` counts every forward of the model through a forward pre-hook: the real tokens of the
call (the attention mask over the new positions, so a generation step counts its one new token),
as trained tokens when gradients are enabled (a backward follows: training steps, GRI scoring, the
relearning guard's passes) and as forward-only tokens otherwise (probes, reference passes,
evaluation, generation). Tokens go to the stage named by the innermost `stage(...)` block.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

FORWARD, TRAIN = 2, 6  # FLOPs per parameter per token


def matmul_params(model: nn.Module) -> int:
    """Parameters that multiply activations: all but an untied input embedding."""
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and any(p is embedding for p in output.parameters())
    return sum(p.numel() for p in model.parameters() if tied or p is not embedding)


def _real_tokens(args: tuple, kwargs: dict) -> int:
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None:  # embeddings passed directly: count their positions
        embeds = kwargs.get("inputs_embeds")
        return 0 if embeds is None else int(embeds.shape[0] * embeds.shape[1])
    mask = kwargs.get("attention_mask")
    if mask is None:
        return int(input_ids.numel())
    return int(mask[:, -input_ids.shape[1] :].sum())  # a cached generation step: its new positions only


@dataclass
class StageCount:
    """Tokens of one stage: forward-only and trained (forward + backward)."""

    forward_tokens: int = 0
    trained_tokens: int = 0

    def flops(self, n_params: int) -> float:
        return float(n_params) * (FORWARD * self.forward_tokens + TRAIN * self.trained_tokens)


@dataclass
class FlopMeter:
    """Counts a model's tokens by stage while attached (`with meter.attached(model): ...`)."""

    n_params: int
    counts: dict[str, StageCount] = field(default_factory=lambda: defaultdict(StageCount))
    current: str = "other"

    @classmethod
    def of(cls, model: nn.Module) -> FlopMeter:
        return cls(matmul_params(model))

    @contextlib.contextmanager
    def attached(self, model: nn.Module) -> Iterator[FlopMeter]:
        def count(module, args, kwargs):
            tokens = _real_tokens(args, kwargs)
            entry = self.counts[self.current]
            if torch.is_grad_enabled():
                entry.trained_tokens += tokens
            else:
                entry.forward_tokens += tokens

        handle = model.register_forward_pre_hook(count, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Tokens processed inside go to `name` (nested blocks: the innermost)."""
        outer, self.current = self.current, name
        try:
            yield
        finally:
            self.current = outer

    def summary(self) -> dict:
        """{"n_params", "stages": {stage: {forward_tokens, trained_tokens, flops}}, "total_flops"}."""
        stages = {
            name: {
                "forward_tokens": c.forward_tokens,
                "trained_tokens": c.trained_tokens,
                "flops": c.flops(self.n_params),
            }
            for name, c in self.counts.items()
        }
        return {"n_params": self.n_params, "stages": stages, "total_flops": sum(s["flops"] for s in stages.values())}


def training_flops(n_params: int, tokens_per_epoch: int, epochs: float) -> float:
    """FLOPs of training on `tokens_per_epoch` real tokens for `epochs` epochs (6N a token): what a
    model retrained from scratch costs, counted as a deletion is."""
    return float(TRAIN * n_params * tokens_per_epoch * epochs)


def stage_meter(meter: FlopMeter | None, name: str) -> contextlib.AbstractContextManager:
    """`meter.stage(name)`, or nothing without a meter."""
    return meter.stage(name) if meter is not None else contextlib.nullcontext()
