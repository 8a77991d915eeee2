"""Membership inference: can an attacker tell forget rows (members) from unseen holdout rows?

Every attack gives each answer a loss-like score (lower = more member-like), as OpenUnlearning's
attacks do (`src/evals/metrics/mia/`: "signed ... to show the same trends as loss"):
- loss: the mean token loss of the answer (+EOS) (`mia/loss.py`);
- zlib: that loss / the zlib-compressed byte length of the scored answer text (`mia/zlib.py`:
  `avg_loss / len(zlib.compress(text.encode("utf-8")))`, text = the decoded label tokens);
- Min-K% (Shi et al. 2023): minus the mean of the lowest k (0.4) fraction of token log-probs
  (`mia/min_k.py`);
- Min-K%++ (Zhang et al. 2024): the same over token log-probs standardised by the mean and standard
  deviation of log p over the model's next-token distribution at each position
  (`mia/min_k_plus_plus.py`; variance clamped at 1e-6 there, i.e. sigma >= 1e-3 here).
OpenUnlearning's token-wise attacks (Min-K%, Min-K%++) drop the EOS prediction
(`utils.py::tokenwise_logprobs`, "ignore eos prediction"); loss and zlib keep it. Callers pass
`without_eos(...)` to the token-wise scores to match.

`mia_auc` orients the ROC AUC as OpenUnlearning's `mia/utils.py::mia_auc` does
(`roc_auc_score` with labels forget 0, holdout 1 on the loss-like scores): AUC = P(a member scores
more member-like than a non-member), 1.0 = fully memorised, ~0.5 = never seen, < 0.5 = over-unlearned.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from transformers import PreTrainedTokenizerBase

MIN_K = 0.4  # OpenUnlearning's TOFU configs (mia_min_k.yaml, mia_min_k_plus_plus.yaml)
SIGMA_FLOOR = 1e-3  # sqrt of OpenUnlearning's variance clamp 1e-6


def mia_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of the attack "lower score = member": P(score_member < score_nonmember), ties 1/2.

    Scores are loss-like (any attack here). Rank-based (Mann-Whitney U / (n_m * n_n)), equal to
    sklearn's roc_auc_score(labels=[0]*n_m + [1]*n_n, scores). Members are the forget set,
    non-members the holdout set of unseen fictitious authors: 1.0 = fully memorised, ~0.5 = like a
    model that never saw them (TOFU's retrained baseline), < 0.5 = over-unlearned (forget rows
    look *less* likely than unseen ones, itself a tell).
    """
    members, others = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if not len(members) or not len(others):
        raise ValueError("need at least one member and one non-member")
    ranks = rankdata(np.concatenate([-members, -others]))  # higher = more member-like
    u = ranks[: len(members)].sum() - len(members) * (len(members) + 1) / 2
    return float(u / (len(members) * len(others)))


def scored_answer_text(answer: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """The answer as the attacks score it: its label tokens (`encode_qa`'s " " + answer, EOS
    skipped) decoded back, which is the text OpenUnlearning's zlib attack compresses."""
    return tokenizer.decode(tokenizer.encode(" " + answer, add_special_tokens=False), skip_special_tokens=True)


def zlib_size(text: str) -> int:
    """The zlib-compressed length in bytes of the UTF-8 text (at least 1 byte)."""
    return max(len(zlib.compress(text.encode("utf-8"))), 1)


def zlib_scores(losses: Sequence[float], texts: Sequence[str]) -> np.ndarray:
    """(N,) loss / zlib-compressed length in bytes of the UTF-8 text (at least 1 byte).

    A member's loss is low relative to how compressible (predictable) its text is in general.
    """
    if len(losses) != len(texts):
        raise ValueError("losses and texts differ in length")
    sizes = np.array([zlib_size(t) for t in texts], float)
    return np.asarray(losses, float) / sizes


def without_eos(token_values: torch.Tensor) -> torch.Tensor:
    """The answer tokens' values without the last (EOS) position, unless that would leave none."""
    return token_values[:-1] if len(token_values) > 1 else token_values


def min_k_score(token_logprobs: torch.Tensor, k: float = MIN_K) -> float:
    """Minus the mean of the lowest max(1, int(k * n)) of n token log-probs (loss-like).

    token_logprobs: (n,) with n >= 1. A memorised text has no very unlikely tokens.
    """
    if not 0 < k <= 1:
        raise ValueError("k must be in (0, 1]")
    if len(token_logprobs) == 0:
        raise ValueError("no tokens to score")
    lowest = torch.sort(token_logprobs.double()).values[: max(1, int(len(token_logprobs) * k))]
    return float(-lowest.mean())


def min_k_plus_plus_score(
    token_logprobs: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, k: float = MIN_K
) -> float:
    """Min-K%++: `min_k_score` of z_t = (log p(x_t) - mu_t) / max(sigma_t, 1e-3) (loss-like).

    All (n,): mu_t = E_{v~p_t}[log p_t(v)], sigma_t its standard deviation under p_t
    (`likelihood.answer_token_stats`). A member's token sits above what the model's distribution
    at that position would typically give (a local maximum of the likelihood).
    """
    z = (token_logprobs.double() - mu.double()) / sigma.double().clamp(min=SIGMA_FLOOR)
    return min_k_score(z, k)


def privleak(auc: float, reference_auc: float = 0.5) -> float:
    """MUSE's PrivLeak in percent: ((1 - AUC) - (1 - AUC_ref)) / (1 - AUC_ref) * 100.

    AUC_ref is the retrained model's AUC on the same forget/holdout data (else 0.5, a model that
    cannot tell them apart). 0 = the retrained model's privacy; < 0 = the forget set still leaks
    (more member-like than after retraining); > 0 = over-unlearned. OpenUnlearning
    `src/evals/metrics/privacy.py::privleak` (it adds 1e-10 to the denominator; here AUC_ref = 1
    is refused instead) with the "1 - AUC" flip of its MUSE-compatible orientation.
    """
    if not 0 <= reference_auc < 1:
        raise ValueError("reference_auc must be in [0, 1)")
    return ((1 - auc) - (1 - reference_auc)) / (1 - reference_auc) * 100
