"""The membership attacks, by name: each scores one answer from its token statistics and its text.

Every attack's score is loss-like (lower = more member-like), as in OpenUnlearning's
`src/evals/metrics/mia/` (mia.py has the formulas and what each reads). An attack is one entry:
a score function of (`AnswerTokenStats`, the scored answer text) and the metric its AUC is
reported under. The evaluator, the non-member levels (evaluation/calibration.py) and the privacy
schedule all score through `attack_scores`, so a new attack is one function and one registration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from grin_core.metrics import names as m
from grin_core.metrics.likelihood import AnswerTokenStats
from grin_core.metrics.mia import mia_auc, min_k_plus_plus_score, min_k_score, without_eos, zlib_size
from grin_core.registry import Registry

Score = Callable[[AnswerTokenStats, str], float]


@dataclass(frozen=True)
class Attack:
    """One attack: its per-answer score (loss-like) and the metric of its forget-vs-holdout AUC."""

    score: Score
    auc_metric: str


ATTACKS: Registry[Attack] = Registry("membership attack")


def loss_score(stats: AnswerTokenStats, text: str) -> float:
    """The answer's mean token loss, EOS included (`mia/loss.py`)."""
    return float(-stats.logp.double().mean())


def zlib_score(stats: AnswerTokenStats, text: str) -> float:
    """The mean loss over the zlib-compressed size of the answer text (`mia/zlib.py`)."""
    return loss_score(stats, text) / zlib_size(text)


def mink_score(stats: AnswerTokenStats, text: str) -> float:
    """Min-K% (k 0.4) over the answer tokens without EOS (`mia/min_k.py`)."""
    return min_k_score(without_eos(stats.logp))


def minkpp_score(stats: AnswerTokenStats, text: str) -> float:
    """Min-K%++ (k 0.4) over the standardised token log-probs without EOS (`mia/min_k_plus_plus.py`)."""
    return min_k_plus_plus_score(*(without_eos(v) for v in (stats.logp, stats.mu, stats.sigma)))


ATTACKS.register("loss", Attack(loss_score, m.MIA_AUC))
ATTACKS.register("zlib", Attack(zlib_score, m.MIA_ZLIB_AUC))
ATTACKS.register("mink", Attack(mink_score, m.MIA_MINK_AUC))
ATTACKS.register("minkpp", Attack(minkpp_score, m.MIA_MINKPP_AUC))


def attack_scores(stats: Sequence[AnswerTokenStats], texts: Sequence[str]) -> dict[str, list[float]]:
    """Every registered attack's score of each answer: {attack: [score per answer]}."""
    if len(stats) != len(texts):
        raise ValueError("stats and texts differ in length")
    return {name: [ATTACKS[name].score(s, t) for s, t in zip(stats, texts, strict=True)] for name in ATTACKS}


def attack_aucs(members: Mapping[str, Sequence[float]], nonmembers: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """{attack: AUC} of members against non-members, per attack both score (mia.mia_auc)."""
    return {name: mia_auc(members[name], nonmembers[name]) for name in members if name in nonmembers}


def mean_probability(stats: Sequence[AnswerTokenStats]) -> float:
    """The mean over answers of exp(mean token log-prob): TOFU's normalised answer probability."""
    return float(np.mean([np.exp(s.logp.double().mean().item()) for s in stats]))
