"""The evaluation gate's decision on a candidate: each check, and one human-readable reason.

The checks are the registered ones (gate_checks/, gate_registry.py), their thresholds a policy's
(gate_policy.py). Pure: metrics in, a decision out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check
from policy.gate_checks import GATE_CHECKS
from policy.gate_policy import GatePolicy
from policy.gate_registry import GateInputs


class GateDecision(BaseModel):
    """The gate's verdict on a candidate, with the checks behind it and one human-readable reason."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reason: str
    checks: list[GateCheck]


def decide(
    policy: GatePolicy,
    before: Mapping[str, float],
    after: Mapping[str, float],
    origin: Mapping[str, float] | None = None,
    *,
    checks: Iterable[str] | None = None,
) -> GateDecision:
    """Forget metrics must fall below absolute and parent-relative bounds; retain and utility must hold;
    the forget set must look to the privacy checks like data the model never saw.

    `before` are the parent version's metrics on the same suite, `after` the candidate's, `origin`
    the line's first version's (as recorded when it was first unlearned; the parent's own when it
    is the origin). Given an origin, retain and utility must also stay above a fraction of its
    numbers. `checks` names the registered checks to run (gate_checks/; default every one, in
    registration order); an unknown name raises with the known ones.
    """
    return _decision(run_checks(GateInputs(policy, before, after, origin), checks))


def run_checks(inputs: GateInputs, names: Iterable[str] | None = None) -> list[GateCheck]:
    """The checks of the named rules (every registered one by default, in registration order); an unknown
    name raises before any check runs. A rule that needs the holdout is skipped when it was not measured."""
    rules = [GATE_CHECKS[name] for name in (GATE_CHECKS.names() if names is None else names)]
    checks: list[GateCheck] = []
    for rule in rules:
        if rule.needs_holdout and not inputs.holdout_measured:
            continue
        checks += rule.run(inputs)
    return checks


def non_member_auc(policy: GatePolicy) -> float:
    """The AUC a model that never saw the forget set would give against this line's holdout."""
    return 0.5 if policy.mia_reference_auc is None else policy.mia_reference_auc


def nothing_to_forget(policy: GatePolicy, before: Mapping[str, float]) -> GateDecision | None:
    """A decision that the parent never learned the forget set, or None when there is work to do.

    The parent's own forget metrics already sit where the gate wants a candidate's: forget
    ROUGE-L at most `never_learned_rougeL_max`, keyword accuracy within its absolute bound, and,
    where measured, membership inference at chance (`mia_auc` at most `never_learned_mia_auc_max`)
    and the answers about as likely as the non-member holdout's (`never_learned_prob_ratio_max`).
    Unlearning such a set could only damage the model, so no version is registered.
    """
    checks = [
        bound_check(
            "never_learned_rougeL",
            m.FORGET_ROUGEL,
            before.get(m.FORGET_ROUGEL),
            policy.never_learned_rougeL_max,
            "parent's forget ROUGE-L",
            at_most=True,
        )
    ]
    if m.FORGET_KEYWORD_ACC in before:
        checks.append(
            bound_check(
                "never_learned_keyword_acc",
                m.FORGET_KEYWORD_ACC,
                before[m.FORGET_KEYWORD_ACC],
                policy.forget_keyword_acc_max,
                "parent's forget keyword accuracy",
                at_most=True,
            )
        )
    if m.MIA_AUC in before:
        checks.append(
            bound_check(
                "never_learned_mia_auc",
                m.MIA_AUC,
                before[m.MIA_AUC],
                policy.never_learned_mia_auc_max,
                "parent's forget-vs-holdout MIA AUC",
                at_most=True,
            )
        )
    # the typical (geometric-mean) ratio the gate reads when the evaluation gives it, else the means'
    ratio = before.get(m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO, before.get(m.FORGET_HOLDOUT_PROB_RATIO))
    if ratio is None and before.get(m.HOLDOUT_PROB) and m.FORGET_PROB in before:
        ratio = before[m.FORGET_PROB] / before[m.HOLDOUT_PROB]
    if ratio is not None:
        checks.append(
            bound_check(
                "never_learned_prob",
                m.FORGET_HOLDOUT_PROB_RATIO,
                ratio,
                policy.never_learned_prob_ratio_max,
                "parent's forget / holdout answer probability",
                at_most=True,
            )
        )
    if not all(c.passed for c in checks):
        return None
    return GateDecision(passed=True, reason="nothing to forget: " + "; ".join(c.detail for c in checks), checks=checks)


def rebuild_decision(
    policy: GatePolicy, origin: Mapping[str, float] | None, after: Mapping[str, float]
) -> GateDecision:
    """The gate of a rebuilt (exact) version: retain ROUGE-L and utility against the line's origin.

    A rebuild never trained on the deleted records (its manifest proves it: `grin audit verify-exact`),
    so the privacy rows are reported with its metrics, not gated; a line with no recorded origin
    metrics is held to nothing and the reason says so.
    """
    if not origin:
        return GateDecision(
            passed=True, checks=[], reason="passed: the line's origin recorded no metrics to hold the rebuild to"
        )
    return _decision(run_checks(GateInputs(policy, {}, after, origin), ("origin",)))


def _decision(checks: list[GateCheck]) -> GateDecision:
    """Passed when every check passed; the reason lists every check, or only the failed ones."""
    failed = [c for c in checks if not c.passed]
    reason = (
        "passed: " + "; ".join(c.detail for c in checks)
        if not failed
        else "failed: " + "; ".join(c.detail for c in failed)
    )
    return GateDecision(passed=not failed, reason=reason, checks=checks)
