"""A relearning attack simulated at every step, so unlearning ends where that attack wins little back.

Gradient-based unlearning suppresses: the knowledge stays in the weights, and a few fine-tuning
steps on part of the forget set bring the rest back (Hu et al. arXiv 2406.13356; Deeb & Roger
arXiv 2410.08827). Meta-unlearning answers the attack it expects (MUDMAN, arXiv 2506.12484;
sharpness-aware unlearning, Fan et al. arXiv 2502.05374): take the attacker's step, measure there,
and descend from where the attacker would stand.

Each step, the forget batch is split in two halves. The attacker fine-tunes on the first: one sign
step of size `eps` on its answer NLL over every weight of the model (Adam's first steps move each
weight by about its learning rate times the sign of its gradient, so `eps` stands for a few of an
attacker's steps). At those weights, the second half's sorted token log-probs must not rise above
their never-seen profiles (`profile_excess_loss`): relearning some forgotten answers must not
restore the others. The gradient of that excess, taken at the attacker's weights (first order, as
MAML-style meta-learning does), is added to the trainable weights' gradient before the step.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from grin_core.unlearning.nonmember_profiles import ProfileTargets
from grin_core.unlearning.objectives import answer_nll, answer_token_logprobs_and_z, profile_excess_loss

FORGET_KEYS = ("input_ids", "attention_mask", "labels")


def attacker_weights(model: nn.Module, batch: Mapping[str, torch.Tensor], eps: float) -> dict[str, torch.Tensor]:
    """Every named parameter after one sign step of size `eps` down the batch's answer NLL.

    Frozen weights move too (the attacker fine-tunes everything); the trainable ones stay connected
    to their parameters, so a loss at these weights differentiates into them.
    """
    named = dict(model.named_parameters())
    frozen = [p for p in named.values() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        grads = torch.autograd.grad(answer_nll(logits, batch["labels"]), list(named.values()), allow_unused=True)
    finally:
        for p in frozen:
            p.requires_grad_(False)
    return {
        name: (p if p.requires_grad else p.detach()) - (0.0 if g is None else eps * g.sign())
        for (name, p), g in zip(named.items(), grads, strict=True)
    }


def relearn_guard_backward(
    model: nn.Module,
    inputs: Mapping[str, torch.Tensor],
    profiles: ProfileTargets,
    rows: torch.Tensor,
    eps: float,
    weight: float,
    stat: str = "profile",
) -> float | None:
    """Simulate the attack on half the forget batch, backward `weight` x the other half's excess at the
    attacker's weights into the trainable parameters' `.grad`; returns the excess (None: batch < 2)."""
    n = inputs["input_ids"].shape[0]
    if n < 2 or weight <= 0:
        return None
    half = n // 2
    attack = {k: inputs[k][:half] for k in FORGET_KEYS}
    measured = {k: inputs[k][half:] for k in FORGET_KEYS}
    weights = attacker_weights(model, attack, eps)
    logits = functional_call(
        model,
        weights,
        args=(),
        kwargs={"input_ids": measured["input_ids"], "attention_mask": measured["attention_mask"]},
    ).logits
    logp, _, counts = answer_token_logprobs_and_z(logits, measured["labels"])
    targets = profiles.for_rows(rows[half:].tolist(), counts, logp.device)
    if stat == "delta":  # what the attack step wins back: the rise of each answer's mean log-prob
        here = model(input_ids=measured["input_ids"], attention_mask=measured["attention_mask"]).logits
        before, _, _ = answer_token_logprobs_and_z(here, measured["labels"])
        excess = torch.stack(
            [torch.relu(v.mean() - b.mean()) for v, b in zip(logp.split(counts), before.split(counts), strict=True)]
        ).mean()
    elif stat == "mean":  # only each answer's mean may not rise above its target's
        excess = torch.stack(
            [torch.relu(v.mean() - t.mean()) for v, (t, _) in zip(logp.split(counts), targets, strict=True)]
        ).mean()
    else:
        excess = profile_excess_loss(logp, counts, targets)
    (weight * excess).backward()
    return excess.item()
