"""The evaluation gate's decision on a candidate: each check, and one human-readable reason.

Ratios compare the candidate with its parent version, so a policy (gate_policy.py) stays
meaningful across models whose absolute scores differ. Pure: metrics in, a decision out.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from grin_core.metrics import names as m
from policy.gate_policy import GatePolicy


class GateCheck(BaseModel):
    """One threshold compared with one metric; `limit` is the bound the value had to meet."""

    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    value: float | None
    limit: float | None
    passed: bool
    detail: str
    # Which way a failure points the ladder: "stronger" unlearning, "weaker", or None (neither).
    asks: str | None = None


class GateDecision(BaseModel):
    """The gate's verdict on a candidate, with the checks behind it and one human-readable reason."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    reason: str
    checks: list[GateCheck]


def _check(
    name: str,
    metric: str,
    value: float | None,
    limit: float | None,
    label: str,
    *,
    at_most: bool,
    asks: str | None = "default",
) -> GateCheck:
    """`value` must be at most (or at least) `limit`; a metric that was not measured fails.

    By default a failed forget bound asks for stronger unlearning and a failed retain / utility
    bound for weaker."""
    m.check(metric)  # a check reads a metric some evaluation reports
    if asks == "default":
        asks = "stronger" if metric.startswith("forget") else "weaker"
    if value is None or limit is None:
        detail, ok = f"{label} was not measured", False
    else:
        ok = value <= limit if at_most else value >= limit
        sign = ("≤" if ok else ">") if at_most else ("≥" if ok else "<")
        detail = f"{label} {value:.4f} {sign} {limit:.4f}"
    return GateCheck(
        name=name, metric=metric, value=value, limit=limit, passed=ok, detail=detail, asks=None if ok else asks
    )


def decide(
    policy: GatePolicy,
    before: Mapping[str, float],
    after: Mapping[str, float],
    origin: Mapping[str, float] | None = None,
) -> GateDecision:
    """Forget metrics must fall below absolute and parent-relative bounds; retain and utility must hold.

    `before` are the parent version's metrics on the same suite, `after` the candidate's, `origin`
    the line's first version's (as recorded when it was first unlearned; the parent's own when it
    is the origin). Given an origin, retain and utility must also stay above a fraction of its
    numbers, so a line of tickets cannot erode the model one parent-relative step at a time. Keyword
    and utility checks apply when the suite measures them (a ticket without key phrases has no
    keyword accuracy); forget and retain ROUGE-L are always required.
    """
    forget, retain = after.get(m.FORGET_ROUGEL), after.get(m.RETAIN_ROUGEL)
    checks = [
        _check("forget_rougeL_abs", m.FORGET_ROUGEL, forget, policy.forget_rougeL_max, "forget ROUGE-L", at_most=True),
        _check(
            "forget_rougeL_rel",
            m.FORGET_ROUGEL,
            forget,
            _times(policy.forget_rougeL_max_ratio, before.get(m.FORGET_ROUGEL)),
            "forget ROUGE-L vs parent",
            at_most=True,
        ),
        _check(
            "retain_rougeL_rel",
            m.RETAIN_ROUGEL,
            retain,
            _times(policy.retain_rougeL_min_ratio, before.get(m.RETAIN_ROUGEL)),
            "retain ROUGE-L vs parent",
            at_most=False,
        ),
    ]
    if m.FORGET_KEYWORD_ACC in before or m.FORGET_KEYWORD_ACC in after:
        keywords = after.get(m.FORGET_KEYWORD_ACC)
        checks += [
            _check(
                "forget_keyword_acc_abs",
                m.FORGET_KEYWORD_ACC,
                keywords,
                policy.forget_keyword_acc_max,
                "forget keyword accuracy",
                at_most=True,
            ),
            _check(
                "forget_keyword_acc_rel",
                m.FORGET_KEYWORD_ACC,
                keywords,
                _times(policy.forget_keyword_acc_max_ratio, before.get(m.FORGET_KEYWORD_ACC)),
                "forget keyword accuracy vs parent",
                at_most=True,
            ),
        ]
    if m.MODEL_UTILITY in before or m.MODEL_UTILITY in after:
        checks.append(
            _check(
                "model_utility_rel",
                m.MODEL_UTILITY,
                after.get(m.MODEL_UTILITY),
                _times(policy.model_utility_min_ratio, before.get(m.MODEL_UTILITY)),
                "model utility vs parent",
                at_most=False,
            )
        )
    if origin is not None:
        checks += _origin_checks(policy, origin, after)
    checks += privacy_checks(policy, after)
    failed = [c for c in checks if not c.passed]
    reason = (
        "passed: " + "; ".join(c.detail for c in checks)
        if not failed
        else "failed: " + "; ".join(c.detail for c in failed)
    )
    return GateDecision(passed=not failed, reason=reason, checks=checks)


def _origin_checks(policy: GatePolicy, origin: Mapping[str, float], after: Mapping[str, float]) -> list[GateCheck]:
    checks = [
        _check(
            "retain_rougeL_origin",
            m.RETAIN_ROUGEL,
            after.get(m.RETAIN_ROUGEL),
            _times(policy.retain_rougeL_min_origin_ratio, origin.get(m.RETAIN_ROUGEL)),
            "retain ROUGE-L vs origin",
            at_most=False,
        )
    ]
    if m.MODEL_UTILITY in origin or m.MODEL_UTILITY in after:
        checks.append(
            _check(
                "model_utility_origin",
                m.MODEL_UTILITY,
                after.get(m.MODEL_UTILITY),
                _times(policy.model_utility_min_origin_ratio, origin.get(m.MODEL_UTILITY)),
                "model utility vs origin",
                at_most=False,
            )
        )
    return checks


def non_member_auc(policy: GatePolicy) -> float:
    """The AUC a model that never saw the forget set would give against this line's holdout."""
    return 0.5 if policy.mia_reference_auc is None else policy.mia_reference_auc


PROBES = {  # metric key -> label; each is checked when the evaluation measured it
    m.FORGET_PARAPHRASE_ROUGEL: "forget ROUGE-L on paraphrased questions",
    m.FORGET_FORMAT_MAX_ROUGEL: "forget ROUGE-L, worst other prompt format",
    m.FORGET_INT8_ROUGEL: "forget ROUGE-L of int8 fake-quantised weights",
    m.FORGET_INT4_ROUGEL: "forget ROUGE-L of int4 fake-quantised weights",
}


ATTACK_LABELS = {"loss": "loss", "zlib": "zlib", "mink": "Min-K%", "minkpp": "Min-K%++"}  # metrics/attacks.py


def attack_level(policy: GatePolicy, after: Mapping[str, float], attack: str) -> tuple[float, str]:
    """An attack's non-member level and where it comes from: measured on the candidate (never-seen
    calibration records against the holdout), else the line's recorded level (the loss attack), else 0.5."""
    if m.NONMEMBER_AUC[attack] in after:
        return after[m.NONMEMBER_AUC[attack]], "never-seen records"
    if attack == "loss" and policy.mia_reference_auc is not None:
        return policy.mia_reference_auc, "the line's calibration"
    return 0.5, "no calibration data"


def attack_checks(policy: GatePolicy, after: Mapping[str, float]) -> list[GateCheck]:
    """Each attack's forget-vs-holdout AUC in a two-sided band around its own non-member level: above
    asks for stronger unlearning (the forget set is still recognised), below for weaker (over-unlearned:
    the forget set stands out the other way)."""
    checks = []
    for attack, metric in m.ATTACK_AUC.items():
        if metric not in after or attack not in policy.attacks:
            continue
        level, source = attack_level(policy, after, attack)
        prefix = "mia" if attack == "loss" else f"mia_{attack}"  # the loss attack's checks keep their names
        label = f"{ATTACK_LABELS[attack]} attack AUC (level {level:.3f}, {source})"
        checks += [
            _check(
                f"{prefix}_auc_high",
                metric,
                after[metric],
                min(level + policy.mia_auc_band, 1.0),
                label,
                at_most=True,
                asks="stronger",
            ),
            _check(
                f"{prefix}_auc_low",
                metric,
                after[metric],
                max(level - policy.mia_auc_band, 0.0),
                f"{label}, over-unlearning",
                at_most=False,
                asks="weaker",
            ),
        ]
    return checks


def mean_prob_ratio_bound(policy: GatePolicy, after: Mapping[str, float]) -> float:
    """The policy's bound on the mean forget/holdout probability ratio, or twice what never-seen records
    show when that is more (a line whose holdout is harder than its training-like data)."""
    return max(policy.forget_holdout_mean_prob_ratio_max, 2 * after.get(m.NONMEMBER_PROB_RATIO, 0.0))


def relearn_bound(policy: GatePolicy, after: Mapping[str, float]) -> tuple[float, str]:
    """Forget ROUGE-L after relearning may exceed never-seen records' under the same attack by the
    policy's margin; without those, the policy's absolute bound."""
    if m.RELEARN_NONMEMBER_ROUGEL in after:
        return after[m.RELEARN_NONMEMBER_ROUGEL] + policy.relearn_rougeL_margin, "never-seen records + margin"
    return policy.relearn_rougeL_max, "absolute bound"


def privacy_checks(policy: GatePolicy, after: Mapping[str, float]) -> list[GateCheck]:
    """Every membership attack in a band around its non-member level, forget vs holdout probability
    (typical and mean), and the robustness probes. Without a holdout measurement: one failing check
    saying privacy was not checked, unless the policy waives it."""
    if m.MIA_AUC not in after:
        return (
            []
            if policy.privacy_waived
            else [
                GateCheck(
                    name="privacy_checked",
                    metric=m.MIA_AUC,
                    value=None,
                    limit=None,
                    passed=False,
                    detail="privacy not checked: the eval suite has no holdout (non-member) part",
                    asks=None,
                )
            ]
        )
    checks = attack_checks(policy, after)
    if m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO in after:
        checks.append(
            _check(
                "forget_prob_vs_holdout",
                m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO,
                after[m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO],
                policy.forget_holdout_prob_ratio_max,
                "forget/holdout typical answer probability",
                at_most=True,
                asks="stronger",
            )
        )
    if m.FORGET_HOLDOUT_PROB_RATIO in after:
        checks.append(
            _check(
                "forget_mean_prob_vs_holdout",
                m.FORGET_HOLDOUT_PROB_RATIO,
                after[m.FORGET_HOLDOUT_PROB_RATIO],
                mean_prob_ratio_bound(policy, after),
                "forget/holdout mean answer probability (a few likely answers dominate it)",
                at_most=True,
                asks="stronger",
            )
        )
    for key, label in PROBES.items():
        if key in after:
            checks.append(_check(f"probe_{key}", key, after[key], policy.probe_rougeL_max, label, at_most=True))
    if m.RELEARN_FORGET_ROUGEL in after:
        bound, source = relearn_bound(policy, after)
        checks.append(
            _check(
                "probe_relearn",
                m.RELEARN_FORGET_ROUGEL,
                after[m.RELEARN_FORGET_ROUGEL],
                bound,
                f"forget ROUGE-L after relearning half ({source})",
                at_most=True,
                asks="stronger",
            )
        )
    if m.FORGET_SAMPLED_BEST_ROUGEL in after:
        checks.append(
            _check(
                "probe_sampled",
                m.FORGET_SAMPLED_BEST_ROUGEL,
                after[m.FORGET_SAMPLED_BEST_ROUGEL],
                policy.sampled_rougeL_max,
                "forget best-of-N sampled ROUGE-L",
                at_most=True,
            )
        )
    return checks


def nothing_to_forget(policy: GatePolicy, before: Mapping[str, float]) -> GateDecision | None:
    """A decision that the parent never learned the forget set, or None when there is work to do.

    The parent's own forget metrics already sit where the gate wants a candidate's: forget
    ROUGE-L at most `never_learned_rougeL_max`, keyword accuracy within its absolute bound, and,
    where measured, membership inference at chance (`mia_auc` at most `never_learned_mia_auc_max`)
    and the answers about as likely as the non-member holdout's (`never_learned_prob_ratio_max`).
    Unlearning such a set could only damage the model, so no version is registered.
    """
    checks = [
        _check(
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
            _check(
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
            _check(
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
            _check(
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


def _times(ratio: float, value: float | None) -> float | None:
    return None if value is None else ratio * value


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
    checks = _origin_checks(policy, origin, after)
    failed = [c for c in checks if not c.passed]
    reason = (
        "passed: " + "; ".join(c.detail for c in checks)
        if not failed
        else "failed: " + "; ".join(c.detail for c in failed)
    )
    return GateDecision(passed=not failed, reason=reason, checks=checks)
