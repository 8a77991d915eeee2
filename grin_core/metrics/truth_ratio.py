"""TOFU's truth ratio and forget quality (Maini et al. 2024, sec. 2.5; OpenUnlearning).

R = mean_k P(ã_k|q)^(1/|ã_k|) / P(â|q)^(1/|â|): how much likelier (per token) the model finds
wrong ("perturbed") answers than a paraphrase of the right one. A model that knows the answer has
R << 1; one that never saw it has R near 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scipy.stats import ks_2samp


def truth_ratio(paraphrased: torch.Tensor, perturbed: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """(N,) truth ratios from normalised probabilities.

    paraphrased: (N,) P(â|q)^(1/|â|); perturbed: (N, K) or N tensors of any length K_i, each
    P(ã|q)^(1/|ã|). Real authors / world facts have no paraphrase: pass the correct answer's.
    """
    wrong = torch.stack([torch.as_tensor(p, dtype=torch.float64).mean() for p in perturbed])
    return wrong / paraphrased.double()


def forget_truth_ratio_stat(ratios: torch.Tensor) -> float:
    """Mean of min(R, 1/R) over the forget set: 1 when the model cannot tell right from wrong."""
    return torch.minimum(ratios, 1 / ratios).mean().item()


def retain_truth_ratio_stat(ratios: torch.Tensor) -> float:
    """Mean of max(0, 1 - R) over retain / real authors / world facts: 1 when right >> wrong."""
    return (1 - ratios).clamp(min=0).mean().item()


def forget_quality(ratios: Sequence[float], retrained_ratios: Sequence[float]) -> float:
    """TOFU forget quality: KS two-sample p-value between the forget truth ratios of a model and
    those of the model retrained without the forget set. High (-> 1) = indistinguishable."""
    return float(ks_2samp(list(ratios), list(retrained_ratios)).pvalue)
