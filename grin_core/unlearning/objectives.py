"""Unlearning losses as free functions of logits, labels and log-probabilities.

Labels follow data.py: next-token labels aligned with `input_ids`, IGNORE_INDEX outside the
answer. Every function here is differentiable and shape-documented, so unit tests and the
trainer call the same maths.

- NPO (Zhang et al. 2024): -(2/beta) * mean(logsigmoid(-beta * (logp_theta - logp_ref))) on the
  forget set, with logp the summed answer log-likelihood per sequence, + alpha * retain NLL.
- SimNPO (Fan et al. 2024, arXiv 2410.07163): NPO without the reference model and with the
  length-normalised log-likelihood, -(2/beta) * mean(logsigmoid(-(beta/|y|) * logp_theta - gamma)).
- GradDiff: -NLL(forget) + alpha * NLL(retain) (gradient ascent with a retain anchor).
- PO: NLL of a refusal answer to each forget question + alpha * NLL(retain) (refusals.py).
- Profile matching (`match`, nonmember_profiles.py): per forget answer, Huber(sorted token log-probs,
  a never-seen answer's sorted profile) + z_weight * Huber(sorted z-scores, its z profile), two-sided,
  + alpha * NLL(retain).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from grin_core.data.qa import IGNORE_INDEX


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T-1) float32 log P(label_t | prefix) for next-token targets; 0 where ignored.

    logits: (B, T, V); labels: (B, T) aligned with the inputs (shifted here, as HF does).
    """
    targets = labels[:, 1:]
    picked = -F.cross_entropy(  # avoids materialising a (B, T, V) log-softmax copy
        logits[:, :-1].float().transpose(1, 2),
        targets,
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return picked * targets.ne(IGNORE_INDEX)


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) summed answer log-likelihood log P(answer | prompt) of each sequence."""
    return token_logprobs(logits, labels).sum(dim=1)


def answer_token_count(labels: torch.Tensor) -> torch.Tensor:
    """(B,) number of supervised (answer) tokens per sequence, after the causal shift."""
    return labels[:, 1:].ne(IGNORE_INDEX).sum(dim=1)


def answer_nll(logits: torch.Tensor, labels: torch.Tensor, scale=None) -> torch.Tensor:
    """Scalar token-mean answer NLL over the batch (the HF causal-LM loss on these labels).

    `scale(count) -> divisor`: what the summed NLL is divided by instead of the batch's token count
    (distributed.global_token_scale: the global batch's mean under DDP)."""
    count = answer_token_count(labels).sum().clamp_min(1)
    return -token_logprobs(logits, labels).sum() / (count if scale is None else scale(count))


def npo_loss(logp_theta: torch.Tensor, logp_ref: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Scalar NPO loss from (B,) summed sequence log-likelihoods of the model and the reference."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp_theta - logp_ref)).mean()


def simnpo_loss(logp_theta: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float = 0.0) -> torch.Tensor:
    """Scalar SimNPO loss from (B,) summed log-likelihoods and (B,) answer token counts.

    The per-token normalisation is what keeps the push from saturating the way NPO's summed ratio
    does once it is a few multiples of 1/beta below the reference (docs/benchmarks.md's lever table).
    """
    return -(2.0 / beta) * F.logsigmoid(-(beta / lengths.clamp_min(1)) * logp_theta - gamma).mean()


# Every objective is `forget_weight * forget term + alpha * retain NLL`; the privacy schedule turns
# forget_weight down near its target (privacy_schedule.py), 1 is the papers' objective.


def npo_objective(
    logp_theta: torch.Tensor,
    logp_ref: torch.Tensor,
    retain_nll: torch.Tensor,
    beta: float,
    alpha: float,
    forget_weight: float = 1.0,
) -> torch.Tensor:
    """NPO on the forget batch + alpha * retain NLL."""
    return forget_weight * npo_loss(logp_theta, logp_ref, beta) + alpha * retain_nll


def graddiff_objective(
    forget_nll: torch.Tensor, retain_nll: torch.Tensor, alpha: float, forget_weight: float = 1.0
) -> torch.Tensor:
    """Gradient difference: ascend the forget NLL, descend alpha * retain NLL."""
    return -forget_weight * forget_nll + alpha * retain_nll


def po_objective(
    refusal_nll: torch.Tensor, retain_nll: torch.Tensor, alpha: float, forget_weight: float = 1.0
) -> torch.Tensor:
    """Preference optimisation towards refusals: NLL of refusal answers + alpha * retain NLL."""
    return forget_weight * refusal_nll + alpha * retain_nll


def answer_token_logprobs_and_z(
    logits: torch.Tensor, labels: torch.Tensor, sigma_floor: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The answer tokens' log-probs and z-scores, flat (n,) float32 in row order, and each row's count.

    z_t = (log p_t - mu_t) / max(sigma_t, floor), mu_t and sigma_t the mean and standard deviation of
    log p over the vocabulary at t under the model's own distribution (Min-K%++'s statistic, mia.py).
    Only the answer positions' (n, V) log-softmax is built.
    """
    targets = labels[:, 1:]
    keep = targets.ne(IGNORE_INDEX)
    logp_v = torch.log_softmax(logits[:, :-1][keep].float(), dim=-1)
    logp = logp_v.gather(1, targets[keep].unsqueeze(1)).squeeze(1)
    p_v = logp_v.exp()
    mu = (p_v * logp_v).sum(-1)
    sigma = (p_v * (logp_v - mu.unsqueeze(1)).square()).sum(-1).clamp_min(1e-12).sqrt()
    return logp, (logp - mu) / sigma.clamp(min=sigma_floor), keep.sum(dim=1).tolist()


def profile_match_loss(
    logp: torch.Tensor,
    z: torch.Tensor,
    counts: list[int],
    targets: list[tuple[torch.Tensor, torch.Tensor]],
    z_weight: float = 1.0,
    delta: float = 1.0,
) -> torch.Tensor:
    """Scalar mean over rows of Huber(sorted log-probs, target) + z_weight * Huber(sorted z, z target).

    logp, z: flat (n,) per-token values in row order, `counts` tokens per row; targets: per row, the
    ascending (log-prob, z) profiles of its length. Sorting matches the answer's spread to the
    profile's whatever the token order (1-D optimal transport); Huber with threshold `delta` keeps a
    far-off token's pull bounded. Two-sided: a token below its target is pulled back up.
    """
    rows = []
    for values, zs, (target, z_target) in zip(logp.split(counts), z.split(counts), targets, strict=True):
        term = F.smooth_l1_loss(torch.sort(values).values, target, beta=delta)
        if z_weight > 0:
            term = term + z_weight * F.smooth_l1_loss(torch.sort(zs).values, z_target, beta=delta)
        rows.append(term)
    return torch.stack(rows).mean()


def profile_excess_loss(
    logp: torch.Tensor, counts: list[int], targets: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Scalar mean over rows of the mean amount by which sorted token log-probs exceed their target:
    one-sided, what a relearning step must not win back (relearn_guard.py)."""
    rows = [
        F.relu(torch.sort(values).values - target).mean()
        for values, (target, _) in zip(logp.split(counts), targets, strict=True)
    ]
    return torch.stack(rows).mean()
