"""The forget answers must be about as likely as the holdout's: the typical (geometric-mean) ratio, and
the mean ratio, which a few likely answers dominate."""

from __future__ import annotations

from collections.abc import Mapping

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check
from policy.gate_policy import GatePolicy
from policy.gate_registry import GateInputs


def typical_prob_ratio(inputs: GateInputs) -> list[GateCheck]:
    if m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO not in inputs.after:
        return []
    return [
        bound_check(
            "forget_prob_vs_holdout",
            m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO,
            inputs.after[m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO],
            inputs.policy.forget_holdout_prob_ratio_max,
            "forget/holdout typical answer probability",
            at_most=True,
            asks="stronger",
        )
    ]


def mean_prob_ratio_bound(policy: GatePolicy, after: Mapping[str, float]) -> float:
    """The policy's bound on the mean forget/holdout probability ratio, or twice what never-seen records
    show when that is more (a line whose holdout is harder than its training-like data)."""
    return max(policy.forget_holdout_mean_prob_ratio_max, 2 * after.get(m.NONMEMBER_PROB_RATIO, 0.0))


def mean_prob_ratio(inputs: GateInputs) -> list[GateCheck]:
    if m.FORGET_HOLDOUT_PROB_RATIO not in inputs.after:
        return []
    return [
        bound_check(
            "forget_mean_prob_vs_holdout",
            m.FORGET_HOLDOUT_PROB_RATIO,
            inputs.after[m.FORGET_HOLDOUT_PROB_RATIO],
            mean_prob_ratio_bound(inputs.policy, inputs.after),
            "forget/holdout mean answer probability (a few likely answers dominate it)",
            at_most=True,
            asks="stronger",
        )
    ]
