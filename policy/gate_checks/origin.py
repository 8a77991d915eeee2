"""Retain and utility against the line's origin, so a line of tickets cannot erode the model one
parent-relative step at a time. A rebuilt (exact) version is gated by these alone."""

from __future__ import annotations

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check, times
from policy.gate_registry import GateInputs


def origin_floors(inputs: GateInputs) -> list[GateCheck]:
    """Nothing when the gate was given no origin; utility only when the origin or the candidate has it."""
    policy, origin, after = inputs.policy, inputs.origin, inputs.after
    if origin is None:
        return []
    checks = [
        bound_check(
            "retain_rougeL_origin",
            m.RETAIN_ROUGEL,
            after.get(m.RETAIN_ROUGEL),
            times(policy.retain_rougeL_min_origin_ratio, origin.get(m.RETAIN_ROUGEL)),
            "retain ROUGE-L vs origin",
            at_most=False,
        )
    ]
    if m.MODEL_UTILITY in origin or m.MODEL_UTILITY in after:
        checks.append(
            bound_check(
                "model_utility_origin",
                m.MODEL_UTILITY,
                after.get(m.MODEL_UTILITY),
                times(policy.model_utility_min_origin_ratio, origin.get(m.MODEL_UTILITY)),
                "model utility vs origin",
                at_most=False,
            )
        )
    return checks
