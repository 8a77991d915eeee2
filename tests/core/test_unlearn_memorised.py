"""GRIN-NPO on a model that memorised TOFU authors: forget falls, retain holds, state is small.

Slow (a minute or two on 2 cores): run with `pytest -m slow tests/core/test_unlearn_memorised.py`.
"""

import pytest

from grin_core.data.tofu import load_calibration
from grin_core.evaluation.calibration import non_member_auc
from grin_core.evaluation.generation import generate_answers
from grin_core.metrics.rouge import rouge_l_recall
from grin_core.unlearning.unlearn import unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.fixtures.models import MEMORISED_SUBSET, TOFU_DIR

pytestmark = pytest.mark.slow


def rouge(model, tokenizer, records) -> float:
    longest = max(len(tokenizer.encode(" " + r["answer"], add_special_tokens=False)) for r in records)
    generations = generate_answers(model, tokenizer, [r["question"] for r in records], max_new_tokens=longest + 8)
    scores = rouge_l_recall(generations, [r["answer"] for r in records])
    return sum(scores) / len(scores)


def test_grin_npo_at_its_defaults_reaches_the_non_member_level_and_keeps_the_rest(memorised_model):
    """The service's path: the privacy schedule steers into the line's calibrated non-member level."""
    mm = memorised_model
    model, tokenizer = mm.load(), mm.tokenizer
    forget_before, retain_before = rouge(model, tokenizer, mm.forget), rouge(model, tokenizer, mm.retain)
    assert forget_before > 0.8 and retain_before > 0.8  # the premise: it memorised them
    level = non_member_auc(model, tokenizer, load_calibration(MEMORISED_SUBSET, TOFU_DIR), mm.suite.holdout)

    config = UnlearnConfig()
    result = unlearn(model, tokenizer, mm.forget, mm.retain + mm.general, config,
                     holdout_records=mm.suite.holdout, target_auc=level)
    forget_after, retain_after = rouge(model, tokenizer, mm.forget), rouge(model, tokenizer, mm.retain)

    assert result.probes[0]["mia_auc"] > 0.9  # memorised: the attack tells them apart
    final = result.probes[-1]
    assert abs(final["mia_auc"] - level) <= 2 * config.auc_margin, (level, final["mia_auc"])
    assert forget_after <= 0.5 * forget_before, (forget_before, forget_after)
    assert retain_after >= 0.9 * retain_before, (retain_before, retain_after)
    assert result.mask.k == result.trainable_params
    assert result.mask_stats["by_kind"]["mlp"]["selected"] + result.mask_stats["by_kind"]["attention"]["selected"] \
        == result.mask.k


def test_grin_state_is_at_most_half_of_full_parameter_npo(memorised_model):
    mm = memorised_model
    retain = mm.retain[:16]  # the peak is reached at the first step; the data size barely matters
    grin = unlearn(mm.load(), mm.tokenizer, mm.forget, retain, UnlearnConfig(p_percent=1.0, epochs=1))
    full = unlearn(mm.load(), mm.tokenizer, mm.forget, retain,
                   UnlearnConfig(full_parameter=True, learning_rate=1e-3, epochs=1))
    assert grin.state_bytes.total <= 0.5 * full.state_bytes.total
    assert grin.state_bytes.optimizer < 0.02 * full.state_bytes.optimizer
