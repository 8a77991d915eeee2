"""The non-member level of a model line's holdout: what "looks like data it never saw" means.

Membership inference compares the forget set with holdout records the model never saw. Its AUC is
0.5 for a model that never saw the forget set only when forget and holdout records are drawn
alike. They often are not: on a TOFU model, authors of TOFU's own training file that the model
never saw score AUC 0.45-0.70 against TOFU's holdout file (mean 0.62 over 11 author pairs; a model
retrained without the forget authors gives 0.70 on them). So the level is measured: records drawn
like the training data but never trained on (the line's `calibration` part) against the holdout,
on the line's first version. Gate and privacy schedule then steer into a band around it.

Every attack has its own level (`non_member_levels`): the same never-seen records scored by each
attack of metrics/attacks.py against the holdout, and their answer probability over the holdout's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.metrics.attacks import attack_aucs, attack_scores, mean_probability
from grin_core.metrics.likelihood import answer_logprobs, answer_token_stats, mean_logprob
from grin_core.metrics.mia import mia_auc, scored_answer_text, zlib_size


def non_member_auc(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    calibration: Sequence[Mapping[str, str]],
    holdout: Sequence[Mapping[str, str]],
    batch_size: int = 64,
) -> float:
    """Loss-MIA AUC of never-seen, training-like `calibration` records against `holdout` records.

    Both are {question, answer} records the model was not trained on; the result is the AUC an
    unlearned forget set should show against the same holdout to look like unseen data.
    """

    def losses(records: Sequence[Mapping[str, str]]) -> list[float]:
        lps = answer_logprobs(
            model, tokenizer, [r["question"] for r in records], [r["answer"] for r in records], batch_size=batch_size
        )
        return (-mean_logprob(lps)).tolist()

    return mia_auc(losses(calibration), losses(holdout))


@dataclass(frozen=True)
class NonMemberLevels:
    """What each attack gives records the model never saw, against the holdout.

    aucs: {attack: AUC} of the calibration records against the holdout, per attack (metrics/attacks.py);
    zlib's is text-aware when forget texts are given (below). mean_prob_ratio / typical_prob_ratio:
    the calibration records' mean (geometric-mean) normalised answer probability over the holdout's.
    """

    aucs: dict[str, float]
    mean_prob_ratio: float
    typical_prob_ratio: float

    def to_dict(self) -> dict:
        return {
            "aucs": dict(self.aucs),
            "mean_prob_ratio": self.mean_prob_ratio,
            "typical_prob_ratio": self.typical_prob_ratio,
        }


def text_aware_zlib_auc(
    calibration_losses: Sequence[float], forget_texts: Sequence[str], holdout_zlib: Sequence[float]
) -> float:
    """The zlib attack's AUC for the forget texts had the model never seen them.

    zlib divides an answer's loss by its text's compressed size, so its level depends on the texts
    scored, not only on the model: two TOFU authors' answers compress differently from ten others'.
    Every never-seen loss (the calibration records') is paired with every forget text's size, and
    that pooled set is scored against the holdout: the expected AUC under a random pairing.
    """
    sizes = np.array([zlib_size(t) for t in forget_texts], float)
    paired = (np.asarray(calibration_losses, float)[None, :] / sizes[:, None]).ravel()
    return mia_auc(paired.tolist(), list(holdout_zlib))


def scored_records(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping[str, str]],
    batch_size: int = 64,
) -> tuple[list, dict[str, list[float]]]:
    """The records' answer token statistics and every attack's score of them (one likelihood pass)."""
    stats = answer_token_stats(
        model, tokenizer, [r["question"] for r in records], [r["answer"] for r in records], batch_size=batch_size
    )
    return stats, attack_scores(stats, [scored_answer_text(r["answer"], tokenizer) for r in records])


def levels_of(
    calibration: tuple[list, dict[str, list[float]]],
    holdout: tuple[list, dict[str, list[float]]],
    forget_texts: Sequence[str] | None = None,
) -> NonMemberLevels:
    """The levels from already scored calibration and holdout records (`scored_records`)."""
    (cal_stats, cal), (hold_stats, hold) = calibration, holdout
    aucs = attack_aucs(cal, hold)
    if forget_texts:
        aucs["zlib"] = text_aware_zlib_auc(cal["loss"], forget_texts, hold["zlib"])
    return NonMemberLevels(
        aucs=aucs,
        mean_prob_ratio=mean_probability(cal_stats) / max(mean_probability(hold_stats), 1e-300),
        typical_prob_ratio=math.exp(float(np.mean(hold["loss"]) - np.mean(cal["loss"]))),
    )


def non_member_levels(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    calibration: Sequence[Mapping[str, str]],
    holdout: Sequence[Mapping[str, str]],
    forget: Sequence[Mapping[str, str]] | None = None,
    batch_size: int = 64,
) -> NonMemberLevels:
    """Every attack's AUC and the probability ratios of never-seen `calibration` records against
    `holdout`, measured on `model` (two likelihood passes). With `forget` records, zlib's level is
    `text_aware_zlib_auc` for their texts."""
    texts = [scored_answer_text(r["answer"], tokenizer) for r in forget] if forget else None
    return levels_of(
        scored_records(model, tokenizer, calibration, batch_size),
        scored_records(model, tokenizer, holdout, batch_size),
        texts,
    )
