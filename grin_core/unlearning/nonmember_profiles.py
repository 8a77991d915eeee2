"""What a forgotten answer should look like, token by token: the profiles of answers never seen.

A model that never saw an answer gives its tokens a spread of log-probabilities: a few tokens it can
predict from the question and the language, many it cannot. Membership attacks read that spread
(the mean: loss and zlib; the lowest tokens: Min-K%; the tokens against the model's own predictive
distribution: Min-K%++). Pushing a forget answer's likelihood down as a whole (NPO, GradDiff) leaves
some answers likely and drives the lowest tokens far below anything a never-seen answer shows,
which the token-wise attacks pick out.

So the `match` objective (objective_registry.py) gives each forget answer a never-seen partner and
pulls its sorted token log-probs, and its sorted z-scores z_t = (log p_t - mu_t) / sigma_t (mu, sigma:
the mean and spread of log p over the vocabulary at t, as Min-K%++ standardises), onto the partner's
sorted profiles, resampled to the answer's length: from both sides, so nothing is pushed past the
never-seen level. Partners are assigned by rank: the forget answer with the k-th highest mean
log-prob now gets the never-seen answer at the same quantile, so answers a never-seen model would
find easy stay easier than the rest, and the spread of answers matches as well as each answer's shape.
The ranks are refreshed whenever the privacy schedule measures the forget set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.metrics.likelihood import AnswerTokenStats, answer_token_stats
from grin_core.metrics.mia import SIGMA_FLOOR


def z_scores(stats: AnswerTokenStats) -> torch.Tensor:
    """(n,) the answer tokens' log-probs standardised by their position's mu and sigma (Min-K%++'s z)."""
    return (stats.logp.double() - stats.mu.double()) / stats.sigma.double().clamp(min=SIGMA_FLOOR)


def resample_sorted(profile: np.ndarray, n: int) -> np.ndarray:
    """A sorted profile of any length as n values at the same quantiles ((i + 0.5) / n)."""
    source = (np.arange(len(profile)) + 0.5) / len(profile)
    return np.interp((np.arange(n) + 0.5) / n, source, profile)


class NonMemberProfiles:
    """Sorted per-token log-prob and z-score profiles of never-seen answers, ordered by mean log-prob.

    Built from the answers' `AnswerTokenStats` under the model before unlearning (EOS included, as
    the loss attack scores it). Numbers only: no text is kept.
    """

    def __init__(self, stats: Sequence[AnswerTokenStats]) -> None:
        if not stats:
            raise ValueError("non-member profiles need at least one never-seen answer")
        means = np.array([s.logp.double().mean().item() for s in stats])
        order = np.argsort(means, kind="stable")
        self.means = means[order]
        self.logp = [np.sort(stats[i].logp.double().numpy()) for i in order]
        self.z = [np.sort(z_scores(stats[i]).numpy()) for i in order]

    @classmethod
    def of_records(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        records: Sequence[Mapping[str, str]],
        batch_size: int = 64,
    ) -> NonMemberProfiles:
        stats = answer_token_stats(
            model, tokenizer, [r["question"] for r in records], [r["answer"] for r in records], batch_size=batch_size
        )
        return cls(stats)

    def __len__(self) -> int:
        return len(self.means)

    def targets(self, quantile: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The (log-prob, z) profiles, each (n,) ascending, of the never-seen answer at `quantile`."""
        index = min(int(quantile * len(self)), len(self) - 1)
        return resample_sorted(self.logp[index], n), resample_sorted(self.z[index], n)


class ProfileTargets:
    """The profiles and where each forget answer stands among the forget set (its rank quantile)."""

    def __init__(self, profiles: NonMemberProfiles, n_forget: int) -> None:
        self.profiles = profiles
        self.quantiles = np.full(n_forget, 0.5)

    def set_ranks(self, mean_logps: Sequence[float]) -> None:
        """Rank quantiles from the forget answers' current mean token log-probs (in forget-set order)."""
        values = np.asarray(mean_logps, float)
        if len(values) != len(self.quantiles):
            raise ValueError("one mean log-prob per forget answer is needed")
        ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        self.quantiles = (ranks + 0.5) / len(values)

    def for_rows(
        self, rows: Sequence[int], counts: Sequence[int], device: torch.device
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per forget row, its (log-prob, z) target profiles as float32 tensors of its token count."""
        out = []
        for row, n in zip(rows, counts, strict=True):
            logp, z = self.profiles.targets(float(self.quantiles[int(row)]), int(n))
            out.append(
                (
                    torch.tensor(logp, dtype=torch.float32, device=device),
                    torch.tensor(z, dtype=torch.float32, device=device),
                )
            )
        return out

    def state_dict(self) -> dict:
        return {"quantiles": self.quantiles.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.quantiles = np.asarray(state["quantiles"], float)
