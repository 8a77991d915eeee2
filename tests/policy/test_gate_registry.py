"""The gate's checks are a registry: a registered check appears in a decision, an unknown name raises."""

import pytest

from grin_core.registry import UnknownNameError
from policy.gate import decide
from policy.gate_check import bound_check
from policy.gate_policy import GatePolicy
from policy.gate_registry import GATE_CHECKS, GateInputs, GateRule

PARENT = {"forget_rougeL": 0.9, "retain_rougeL": 0.9}
AFTER = {"forget_rougeL": 0.2, "retain_rougeL": 0.85}
WAIVED = GatePolicy(privacy_waived=True)


def truth_ratio_floor(inputs: GateInputs):
    """A toy check: the forget truth ratio must be at least 0.6 when it was measured."""
    if "forget_truth_ratio" not in inputs.after:
        return []
    return [
        bound_check(
            "toy_truth_ratio", "forget_truth_ratio", inputs.after["forget_truth_ratio"], 0.6, "truth", at_most=False
        )
    ]


@pytest.fixture
def toy_check():
    GATE_CHECKS.register("toy_truth_ratio", GateRule(truth_ratio_floor))
    yield "toy_truth_ratio"
    GATE_CHECKS.unregister("toy_truth_ratio")


def test_a_registered_check_appears_last_in_a_decision_and_can_fail_it(toy_check):
    passing = decide(WAIVED, PARENT, {**AFTER, "forget_truth_ratio": 0.7})
    assert passing.passed and passing.checks[-1].name == "toy_truth_ratio"
    assert passing.reason.endswith("truth 0.7000 ≥ 0.6000")

    failing = decide(WAIVED, PARENT, {**AFTER, "forget_truth_ratio": 0.4})
    assert not failing.passed and failing.reason == "failed: truth 0.4000 < 0.6000"
    assert [c.name for c in failing.checks if not c.passed] == ["toy_truth_ratio"]
    assert failing.checks[-1].asks == "stronger"  # a forget metric's failure asks for more unlearning


def test_a_check_that_needs_the_holdout_is_skipped_without_it():
    GATE_CHECKS.register("toy_holdout", GateRule(truth_ratio_floor, needs_holdout=True))
    try:
        after = {**AFTER, "forget_truth_ratio": 0.4}
        assert "toy_truth_ratio" not in {c.name for c in decide(WAIVED, PARENT, after).checks}
        measured = decide(WAIVED, PARENT, {**after, "mia_auc": 0.5})
        assert "toy_truth_ratio" in {c.name for c in measured.checks}
    finally:
        GATE_CHECKS.unregister("toy_holdout")


def test_named_checks_run_alone_in_the_order_given(toy_check):
    decision = decide(WAIVED, PARENT, {**AFTER, "forget_truth_ratio": 0.7}, checks=("toy_truth_ratio", "retain_rougeL"))
    assert [c.name for c in decision.checks] == ["toy_truth_ratio", "retain_rougeL_rel"]


def test_an_unknown_check_name_raises_with_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown gate check 'forget_rouge'; known: forget_rougeL, "):
        decide(WAIVED, PARENT, AFTER, checks=("forget_rougeL", "forget_rouge"))
    with pytest.raises(UnknownNameError):
        GATE_CHECKS["nope"]


def test_the_default_decision_runs_every_registered_check_in_order():
    assert GATE_CHECKS.names()[:4] == ("forget_rougeL", "retain_rougeL", "forget_keyword_acc", "model_utility")
    everything = decide(WAIVED, PARENT, AFTER)
    assert everything == decide(WAIVED, PARENT, AFTER, checks=GATE_CHECKS.names())
    assert [c.name for c in everything.checks] == ["forget_rougeL_abs", "forget_rougeL_rel", "retain_rougeL_rel"]
