"""Forget metrics must fall below absolute and parent-relative bounds; retain and utility must hold.

Ratios compare the candidate with its parent version, so a policy stays meaningful across models whose
absolute scores differ. Forget and retain ROUGE-L are always required; keyword and utility checks apply
when the suite measures them (a ticket without key phrases has no keyword accuracy).
"""

from __future__ import annotations

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check, times
from policy.gate_registry import GateInputs


def forget_rougeL(inputs: GateInputs) -> list[GateCheck]:
    policy, forget = inputs.policy, inputs.after.get(m.FORGET_ROUGEL)
    return [
        bound_check(
            "forget_rougeL_abs", m.FORGET_ROUGEL, forget, policy.forget_rougeL_max, "forget ROUGE-L", at_most=True
        ),
        bound_check(
            "forget_rougeL_rel",
            m.FORGET_ROUGEL,
            forget,
            times(policy.forget_rougeL_max_ratio, inputs.before.get(m.FORGET_ROUGEL)),
            "forget ROUGE-L vs parent",
            at_most=True,
        ),
    ]


def retain_rougeL(inputs: GateInputs) -> list[GateCheck]:
    return [
        bound_check(
            "retain_rougeL_rel",
            m.RETAIN_ROUGEL,
            inputs.after.get(m.RETAIN_ROUGEL),
            times(inputs.policy.retain_rougeL_min_ratio, inputs.before.get(m.RETAIN_ROUGEL)),
            "retain ROUGE-L vs parent",
            at_most=False,
        )
    ]


def forget_keyword_acc(inputs: GateInputs) -> list[GateCheck]:
    if m.FORGET_KEYWORD_ACC not in inputs.before and m.FORGET_KEYWORD_ACC not in inputs.after:
        return []
    policy, keywords = inputs.policy, inputs.after.get(m.FORGET_KEYWORD_ACC)
    return [
        bound_check(
            "forget_keyword_acc_abs",
            m.FORGET_KEYWORD_ACC,
            keywords,
            policy.forget_keyword_acc_max,
            "forget keyword accuracy",
            at_most=True,
        ),
        bound_check(
            "forget_keyword_acc_rel",
            m.FORGET_KEYWORD_ACC,
            keywords,
            times(policy.forget_keyword_acc_max_ratio, inputs.before.get(m.FORGET_KEYWORD_ACC)),
            "forget keyword accuracy vs parent",
            at_most=True,
        ),
    ]


def model_utility(inputs: GateInputs) -> list[GateCheck]:
    if m.MODEL_UTILITY not in inputs.before and m.MODEL_UTILITY not in inputs.after:
        return []
    return [
        bound_check(
            "model_utility_rel",
            m.MODEL_UTILITY,
            inputs.after.get(m.MODEL_UTILITY),
            times(inputs.policy.model_utility_min_ratio, inputs.before.get(m.MODEL_UTILITY)),
            "model utility vs parent",
            at_most=False,
        )
    ]
