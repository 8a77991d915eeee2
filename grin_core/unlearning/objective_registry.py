"""The unlearning objectives a trainer runs, by name: each one's loss and what it needs before training.

Every objective is `forget_weight * forget term + alpha * retain NLL` (the maths are the free
functions of objectives.py); an entry adds what a trainer must prepare for it:
- `needs_reference`: the forget answers' summed log-probs under the model before unlearning,
  computed once and carried as a column of the forget set (NPO);
- `refusal_targets`: the forget answers replaced by refusals before training (PO, refusals.py);
- `profiles`: never-seen answers' token profiles to match (nonmember_profiles.py); such an objective
  is bounded (it stops pulling at the never-seen level), so the privacy schedule never turns its
  forget term down or off: it only watches and stops.
Which parameters train is the trainer's business (GRIN: the selected weights; GRUN: an intervention).

Adding one: a function from a `ForgetBatch` to (loss, logged parts) and one line,
`OBJECTIVES.register(name, Objective(loss))`; `UnlearnConfig(method=name)` then runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grin_core.registry import Registry
from grin_core.runtime.distributed import global_token_scale
from grin_core.unlearning.nonmember_profiles import ProfileTargets
from grin_core.unlearning.objectives import (
    answer_nll,
    answer_token_count,
    answer_token_logprobs_and_z,
    graddiff_objective,
    npo_objective,
    po_objective,
    profile_match_loss,
    sequence_logprob,
    simnpo_loss,
)


@dataclass(frozen=True)
class ForgetBatch:
    """One training step as an objective sees it.

    logits (B, T, V) and labels (B, T) of the forget batch (data/qa.py's labels); reference (B,): the
    summed answer log-probs before unlearning, for objectives that need them; retain_nll: the retain
    term (scalar); alpha and weight: the retain and forget weights of this step (the privacy schedule's);
    config: the run's config (beta, gamma, length_normalised, ...); rows (B,): the forget records' indices
    and profiles: their target profiles, for objectives that match profiles.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    reference: torch.Tensor | None
    retain_nll: torch.Tensor
    alpha: float
    weight: float
    config: Any
    rows: torch.Tensor | None = None
    profiles: ProfileTargets | None = None


Loss = Callable[[ForgetBatch], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Objective:
    """An objective's loss (the scalar and the parts a trainer logs) and what it needs beforehand."""

    loss: Loss
    needs_reference: bool = False
    refusal_targets: bool = False
    profiles: bool = False


OBJECTIVES: Registry[Objective] = Registry("unlearning objective")


def npo(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    logp, ref = sequence_logprob(batch.logits, batch.labels), batch.reference
    if batch.config.length_normalised:  # per-token log-ratio: SimNPO's normalisation, reference kept
        count = answer_token_count(batch.labels).clamp_min(1)
        logp, ref = logp / count, ref / count
    loss = npo_objective(logp, ref, batch.retain_nll, batch.config.beta, batch.alpha, batch.weight)
    return loss, {"forget_logp": logp.mean().item()}


def simnpo(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    logp = sequence_logprob(batch.logits, batch.labels)
    loss = batch.weight * simnpo_loss(logp, answer_token_count(batch.labels), batch.config.beta, batch.config.gamma)
    loss = loss + batch.alpha * batch.retain_nll
    return loss, {"forget_logp": logp.mean().item()}


def graddiff(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    forget_nll = answer_nll(batch.logits, batch.labels, global_token_scale)
    loss = graddiff_objective(forget_nll, batch.retain_nll, batch.alpha, batch.weight)
    return loss, {"forget_nll": forget_nll.item()}


def po(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    refusal_nll = answer_nll(batch.logits, batch.labels, global_token_scale)  # the labels are refusals
    return po_objective(refusal_nll, batch.retain_nll, batch.alpha, batch.weight), {"refusal_nll": refusal_nll.item()}


def match(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    logp, z, counts = answer_token_logprobs_and_z(batch.logits, batch.labels)
    targets = batch.profiles.for_rows(batch.rows.tolist(), counts, logp.device)
    forget = profile_match_loss(logp, z, counts, targets, batch.config.z_weight, batch.config.profile_delta)
    over = logp.mean() - torch.cat([t for t, _ in targets]).mean()  # > 0: still likelier than never-seen
    return batch.weight * forget + batch.alpha * batch.retain_nll, {
        "forget_match": forget.item(),
        "forget_logp_over_target": over.item(),
    }


OBJECTIVES.register("npo", Objective(npo, needs_reference=True))
OBJECTIVES.register("match", Objective(match, profiles=True))
OBJECTIVES.register("graddiff", Objective(graddiff))
OBJECTIVES.register("po", Objective(po, refusal_targets=True))
OBJECTIVES.register("simnpo", Objective(simnpo))
