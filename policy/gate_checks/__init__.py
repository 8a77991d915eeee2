"""`GATE_CHECKS` with the gate's checks registered, in the order a decision lists them.

A new check: a function from `GateInputs` to a list of `GateCheck`s (`bound_check` builds one) in the
module of its family, or a new module here, and one registration line below; `needs_holdout=True` when
it reads the holdout's measurements. Its threshold is a `GatePolicy` field, its metric a constant of
grin_core/metrics/names.py.
"""

from __future__ import annotations

from policy.gate_checks import answer_probability, forget_retain, membership, origin, probes
from policy.gate_registry import GATE_CHECKS, GateRule

__all__ = ["GATE_CHECKS"]

GATE_CHECKS.register("forget_rougeL", GateRule(forget_retain.forget_rougeL))
GATE_CHECKS.register("retain_rougeL", GateRule(forget_retain.retain_rougeL))
GATE_CHECKS.register("forget_keyword_acc", GateRule(forget_retain.forget_keyword_acc))
GATE_CHECKS.register("model_utility", GateRule(forget_retain.model_utility))
GATE_CHECKS.register("origin", GateRule(origin.origin_floors))
GATE_CHECKS.register("privacy_checked", GateRule(membership.privacy_checked))
GATE_CHECKS.register("attack_bands", GateRule(membership.attack_bands, needs_holdout=True))
GATE_CHECKS.register("typical_prob_ratio", GateRule(answer_probability.typical_prob_ratio, needs_holdout=True))
GATE_CHECKS.register("mean_prob_ratio", GateRule(answer_probability.mean_prob_ratio, needs_holdout=True))
GATE_CHECKS.register("probes", GateRule(probes.prompt_and_weight_probes, needs_holdout=True))
GATE_CHECKS.register("relearning", GateRule(probes.relearning, needs_holdout=True))
GATE_CHECKS.register("sampling", GateRule(probes.sampling, needs_holdout=True))
