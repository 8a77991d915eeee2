"""TOFU's truth ratio and forget quality (Maini et al. 2024, sec. 2.5), as the reference code has it.

R = P_wrong / P_right, where P_right = P(â|q)^(1/|â|) is the normalised probability of the
paraphrased answer (of the correct answer for real authors / world facts, which have no
paraphrase) and P_wrong is the GEOMETRIC mean of the K perturbed answers' normalised
probabilities: exp of the mean, over k, of their mean token log-probabilities (= minus their
mean-token losses). A model that knows the answer has R << 1; one that never saw it has R near 1.

Reference: TOFU `aggregate_eval_stat.py` (locuslab/tofu: `average_perturb_loss.mean(axis=-1)`, then
`exp(perturbed - paraphrased)`, i.e. 1/R, and the stats min(x, 1/x) / max(0, 1 - 1/x)) and
OpenUnlearning `src/evals/metrics/memorization.py::truth_ratio` (wrong_prob / correct_prob with
`aggregate_to_1D` = mean of the wrong answers' avg losses, `src/evals/metrics/utils.py`). The
paper's text reads as an arithmetic mean of the perturbed probabilities; published numbers use the
geometric one, so this does. Differences from OpenUnlearning: R is computed in log space (no
1e-10 in the denominators), which only matters for probabilities below ~1e-8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scipy.stats import ks_2samp


def truth_ratio(paraphrased: torch.Tensor, perturbed: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """(N,) float64 truth ratios R = exp(mean_k lp_k - lp_para) from MEAN TOKEN LOG-PROBABILITIES.

    paraphrased: (N,) mean token log-prob of the paraphrased (or correct) answer, = -its avg loss
    (`likelihood.mean_logprob`); perturbed: (N, K) or N tensors of any length K_i >= 1, each the
    mean token log-prob of one wrong answer.
    """
    wrong = torch.stack([torch.as_tensor(p, dtype=torch.float64).mean() for p in perturbed])
    return (wrong - paraphrased.double()).exp()


def forget_truth_ratio_stat(ratios: torch.Tensor) -> float:
    """Mean of min(R, 1/R) over the forget set: 1 when the model cannot tell right from wrong."""
    return torch.minimum(ratios, 1 / ratios).mean().item()


def retain_truth_ratio_stat(ratios: torch.Tensor) -> float:
    """Mean of max(0, 1 - R) over retain / real authors / world facts: 1 when right >> wrong."""
    return (1 - ratios).clamp(min=0).mean().item()


def forget_quality(ratios: Sequence[float], retrained_ratios: Sequence[float]) -> float:
    """TOFU forget quality: KS two-sample p-value between the forget truth ratios of a model and
    those of the model retrained without the forget set. High (-> 1) = indistinguishable. (TOFU
    tests 1/R, OpenUnlearning R: the KS statistic is invariant under a monotone map, so alike.)"""
    return float(ks_2samp(list(ratios), list(retrained_ratios)).pvalue)
