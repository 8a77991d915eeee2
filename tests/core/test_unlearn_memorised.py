"""GRIN at its defaults on a model that memorised TOFU authors: every attack moves toward its never-seen
level, forget falls, retain holds, state is small.

Slow (a minute or two on 2 cores): run with `pytest -m slow tests/core/test_unlearn_memorised.py`.
"""

import pytest

from grin_core.data.tofu import load_calibration
from grin_core.evaluation.calibration import non_member_levels
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


def test_grin_at_its_defaults_moves_every_attack_toward_its_non_member_level_and_keeps_the_rest(memorised_model):
    """The service's path: profile matching with the relearning guard, steered toward the level
    never-seen records show on the same model. On this 5-author model one run lands an attack within
    0.15 of its level in most runs but not all (the loss attack missed by 0.25 once), so the test asks
    each attack to be within 0.15 or to have closed at least half of its distance; the benchmark
    (docs/benchmarks.md) reports the figures against a retrained model."""
    mm = memorised_model
    model, tokenizer = mm.load(), mm.tokenizer
    forget_before, retain_before = rouge(model, tokenizer, mm.forget), rouge(model, tokenizer, mm.retain)
    assert forget_before > 0.8 and retain_before > 0.8  # the premise: it memorised them
    calibration = load_calibration(MEMORISED_SUBSET, TOFU_DIR)

    config = UnlearnConfig()
    result = unlearn(
        model,
        tokenizer,
        mm.forget,
        mm.retain + mm.general,
        config,
        holdout_records=mm.suite.holdout,
        calibration_records=calibration,
    )
    forget_after, retain_after = rouge(model, tokenizer, mm.forget), rouge(model, tokenizer, mm.retain)

    assert result.probes[0]["mia_auc"] > 0.9  # memorised: the attack tells them apart
    final = result.probes[-1]
    levels = non_member_levels(model, tokenizer, calibration, mm.suite.holdout, mm.forget)
    for attack, level in levels.aucs.items():
        key = "mia_auc" if attack == "loss" else f"mia_{attack}_auc"
        start = result.probes[0][key]
        assert abs(final[key] - level) <= max(0.15, 0.5 * abs(start - level)), (attack, level, start, final[key])
    assert forget_after <= 0.5 * forget_before, (forget_before, forget_after)
    assert retain_after >= 0.9 * retain_before, (retain_before, retain_after)
    assert result.mask.k == result.trainable_params
    assert (
        result.mask_stats["by_kind"]["mlp"]["selected"] + result.mask_stats["by_kind"]["attention"]["selected"]
        == result.mask.k
    )


def test_grin_state_is_at_most_half_of_full_parameter_npo(memorised_model):
    mm = memorised_model
    retain = mm.retain[:16]  # the peak is reached at the first step; the data size barely matters
    grin = unlearn(mm.load(), mm.tokenizer, mm.forget, retain, UnlearnConfig(method="npo", p_percent=1.0, epochs=1))
    full = unlearn(
        mm.load(),
        mm.tokenizer,
        mm.forget,
        retain,
        UnlearnConfig(method="npo", full_parameter=True, learning_rate=1e-3, epochs=1),
    )
    assert grin.state_bytes.total <= 0.5 * full.state_bytes.total
    assert grin.state_bytes.optimizer < 0.02 * full.state_bytes.optimizer
