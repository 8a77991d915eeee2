"""The non-member level of a model line's holdout: what "looks like data it never saw" means.

Membership inference compares the forget set with holdout records the model never saw. Its AUC is
0.5 for a model that never saw the forget set only when forget and holdout records are drawn
alike. They often are not: on a TOFU model, authors of TOFU's own training file that the model
never saw score AUC 0.45-0.70 against TOFU's holdout file (mean 0.62 over 11 author pairs; a model
retrained without the forget authors gives 0.70 on them). So the level is measured: records drawn
like the training data but never trained on (the line's `calibration` part) against the holdout,
on the line's first version. Gate and privacy schedule then steer into a band around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.metrics.likelihood import answer_logprobs, mean_logprob
from grin_core.metrics.mia import mia_auc


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
        lps = answer_logprobs(model, tokenizer, [r["question"] for r in records], [r["answer"] for r in records],
                              batch_size=batch_size)
        return (-mean_logprob(lps)).tolist()

    return mia_auc(losses(calibration), losses(holdout))
