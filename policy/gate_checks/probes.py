"""The robustness probes (grin_core/evaluation/probes.py): forget ROUGE-L under paraphrase, other prompt
formats, quantisation, relearning and sampling must stay low. Each is checked when it was measured."""

from __future__ import annotations

from collections.abc import Mapping

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check
from policy.gate_policy import GatePolicy
from policy.gate_registry import GateInputs

PROBES = {  # metric key -> label; each is checked when the evaluation measured it
    m.FORGET_PARAPHRASE_ROUGEL: "forget ROUGE-L on paraphrased questions",
    m.FORGET_FORMAT_MAX_ROUGEL: "forget ROUGE-L, worst other prompt format",
    m.FORGET_INT8_ROUGEL: "forget ROUGE-L of int8 fake-quantised weights",
    m.FORGET_INT4_ROUGEL: "forget ROUGE-L of int4 fake-quantised weights",
}


def prompt_and_weight_probes(inputs: GateInputs) -> list[GateCheck]:
    """The paraphrase, format and quantisation probes, all held to the policy's probe bound."""
    bound = inputs.policy.probe_rougeL_max
    return [
        bound_check(f"probe_{key}", key, inputs.after[key], bound, label, at_most=True)
        for key, label in PROBES.items()
        if key in inputs.after
    ]


def relearn_bound(policy: GatePolicy, after: Mapping[str, float]) -> tuple[float, str]:
    """Forget ROUGE-L after relearning may exceed never-seen records' under the same attack by the
    policy's margin; without those, the policy's absolute bound."""
    if m.RELEARN_NONMEMBER_ROUGEL in after:
        return after[m.RELEARN_NONMEMBER_ROUGEL] + policy.relearn_rougeL_margin, "never-seen records + margin"
    return policy.relearn_rougeL_max, "absolute bound"


def relearning(inputs: GateInputs) -> list[GateCheck]:
    if m.RELEARN_FORGET_ROUGEL not in inputs.after:
        return []
    bound, source = relearn_bound(inputs.policy, inputs.after)
    return [
        bound_check(
            "probe_relearn",
            m.RELEARN_FORGET_ROUGEL,
            inputs.after[m.RELEARN_FORGET_ROUGEL],
            bound,
            f"forget ROUGE-L after relearning half ({source})",
            at_most=True,
            asks="stronger",
        )
    ]


def sampling(inputs: GateInputs) -> list[GateCheck]:
    if m.FORGET_SAMPLED_BEST_ROUGEL not in inputs.after:
        return []
    return [
        bound_check(
            "probe_sampled",
            m.FORGET_SAMPLED_BEST_ROUGEL,
            inputs.after[m.FORGET_SAMPLED_BEST_ROUGEL],
            inputs.policy.sampled_rougeL_max,
            "forget best-of-N sampled ROUGE-L",
            at_most=True,
        )
    ]
