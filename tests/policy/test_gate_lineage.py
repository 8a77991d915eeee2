"""The gate against the line's origin, and the parent that never learned its forget set."""

from __future__ import annotations

from policy.gate import decide, nothing_to_forget
from policy.gate_policy import GatePolicy

ORIGIN = {"forget_rougeL": 0.98, "retain_rougeL": 1.00, "forget_keyword_acc": 1.0, "model_utility": 0.50}


def _ticket(parent: dict[str, float], retain_factor: float) -> dict[str, float]:
    """A candidate that forgets its own set and keeps `retain_factor` of its parent's retain and utility."""
    return {
        **parent,
        "forget_rougeL": 0.2,
        "forget_keyword_acc": 0.1,
        "retain_rougeL": parent["retain_rougeL"] * retain_factor,
        "model_utility": parent["model_utility"] * retain_factor,
    }


def test_four_tickets_each_pass_against_their_parent_but_the_fourth_breaks_the_origin_bound() -> None:
    # 0.9x the parent, 0.8x the origin; each ticket keeps 93 % of its parent's retain ROUGE-L and
    # utility: 0.93, 0.865, 0.804 of the origin's pass, 0.748 after the fourth does not.
    policy = GatePolicy(privacy_waived=True)  # this test is about retain and utility only
    parent, origin, verdicts = dict(ORIGIN), None, []
    for _ in range(4):
        # each ticket's own forget set is fully learned by its parent
        before = {**parent, "forget_rougeL": 0.98, "forget_keyword_acc": 1.0}
        after = _ticket(before, 0.93)
        assert decide(policy, before, after).passed  # the parent-only gate of before
        decision = decide(policy, before, after, origin=origin or before)
        verdicts.append(decision)
        origin, parent = origin or before, after
    assert [d.passed for d in verdicts] == [True, True, True, False]
    failed = {c.name for c in verdicts[-1].checks if not c.passed}
    assert failed == {"retain_rougeL_origin", "model_utility_origin"}
    assert "vs origin" in verdicts[-1].reason


def test_origin_checks_apply_only_when_an_origin_is_given() -> None:
    after = _ticket(ORIGIN, 0.93)
    policy = GatePolicy(privacy_waived=True)
    assert "retain_rougeL_origin" not in {c.name for c in decide(policy, ORIGIN, after).checks}
    names = {c.name for c in decide(policy, ORIGIN, after, origin=ORIGIN).checks}
    assert {"retain_rougeL_origin", "model_utility_origin"} <= names


def test_a_parent_that_never_learned_the_forget_set_has_nothing_to_forget() -> None:
    never = {
        "forget_rougeL": 0.05,
        "forget_keyword_acc": 0.0,
        "mia_auc": 0.52,
        "forget_prob": 0.01,
        "holdout_prob": 0.012,
        "retain_rougeL": 0.99,
    }
    decision = nothing_to_forget(GatePolicy(), never)
    assert decision is not None and decision.passed
    assert decision.reason.startswith("nothing to forget: ")
    assert {c.name for c in decision.checks} == {
        "never_learned_rougeL",
        "never_learned_keyword_acc",
        "never_learned_mia_auc",
        "never_learned_prob",
    }
    for change in ({"forget_rougeL": 0.9}, {"forget_keyword_acc": 0.8}, {"mia_auc": 0.9}, {"forget_prob": 0.03}):
        assert nothing_to_forget(GatePolicy(), {**never, **change}) is None, change
    assert nothing_to_forget(GatePolicy(), {"retain_rougeL": 0.99}) is None  # forget not measured
