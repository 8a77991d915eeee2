"""The evaluation gate: its policy, its decision on a candidate, and the retry ladder.

Ratios compare the candidate with its parent version, so a policy stays meaningful across
models whose absolute scores differ. The retry ladder fields bound how far a failed attempt
may be strengthened before a ticket goes to human review.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field


class GatePolicy(BaseModel):
    """Thresholds of the evaluation gate and the limits of its retry ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forget_rougeL_max: float = Field(
        0.4, ge=0.0, le=1.0, description="Forget-set ROUGE-L recall must be at most this."
    )
    forget_rougeL_max_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Forget-set ROUGE-L must be at most this ratio times the parent's.",
    )
    forget_keyword_acc_max: float = Field(
        0.3, ge=0.0, le=1.0, description="Forget-set keyword accuracy must be at most this."
    )
    forget_keyword_acc_max_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Forget-set keyword accuracy must be at most this ratio times the parent's.",
    )
    retain_rougeL_min_ratio: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Retain-set ROUGE-L must be at least this ratio times the parent's.",
    )
    model_utility_min_ratio: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Model utility must be at least this ratio times the parent's.",
    )
    retain_rougeL_min_origin_ratio: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Retain-set ROUGE-L must be at least this ratio times the line's first version's, "
        "so repeated tickets cannot erode a model one parent-relative step at a time.",
    )
    model_utility_min_origin_ratio: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Model utility must be at least this ratio times the line's first version's.",
    )
    never_learned_rougeL_max: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="A parent whose forget ROUGE-L is at most this (and whose other forget metrics "
        "meet the gate's absolute bounds) never learned the forget set: nothing to unlearn.",
    )
    never_learned_mia_auc_max: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="...and, when membership inference is measured, whose forget-vs-holdout AUC is "
        "at most this (0.5: indistinguishable from non-members; a memorised set scores about 1.0, "
        "and 20 vs 20 records of two never-seen sets gave 0.63, so small-sample noise is allowed for).",
    )
    never_learned_prob_ratio_max: float = Field(
        1.5,
        gt=0.0,
        description="...and, when the holdout is measured, whose forget answer probability is at most "
        "this times the holdout's (both non-members: about 1).",
    )
    # Privacy: the forget set must look to the model like data it never saw. These read the
    # evaluation's membership-inference and probe metrics, which need a `holdout` part (non-members).
    mia_auc_band: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Loss-MIA AUC (forget vs holdout) must lie within this of the non-member level, on "
        "both sides: above is data still recognised, far below is over-unlearning (also a tell).",
    )
    mia_reference_auc: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="The non-member level of this line's holdout: the AUC that records the model never "
        "saw, drawn like its training data, get against the holdout (measured when the line is "
        "registered with a calibration part). None = 0.5, right only when holdout and forget records "
        "are alike.",
    )
    forget_holdout_prob_ratio_max: float = Field(
        10.0,
        gt=0.0,
        description="Typical (geometric-mean) per-token forget answer probability at most this times the "
        "holdout's: exp(mean holdout loss - mean forget loss). The arithmetic means' ratio is reported "
        "too, but a few outlying answers dominate it.",
    )
    probe_rougeL_max: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="ROUGE-L bound of the robustness probes (paraphrased questions, other prompt formats, "
        "int8 / int4 fake-quantised weights): each must stay at most this.",
    )
    sampled_rougeL_max: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Best-of-N sampled ROUGE-L (what a persistent user gets) must stay at most this.",
    )
    relearn_probe: bool = Field(
        False,
        description="Also run the relearning probe (fine-tune a copy on half the forget set, measure the "
        "other half); costly, so opt-in per line.",
    )
    relearn_rougeL_max: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="With the relearning probe: forget ROUGE-L on the held-back half after relearning "
        "the other half must stay at most this.",
    )
    privacy_waived: bool = Field(
        False,
        description="A line without holdout data: True registers without privacy checks (recorded in the "
        "audit record); False (default) sends such tickets to needs_review.",
    )
    max_rounds: int = Field(
        4,
        ge=1,
        le=10,
        description="Unlearning rounds per claim, the first included, before needs_review.",
    )
    ladder_p_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="Each retry multiplies the selected-weight percentage p by this.",
    )
    ladder_epochs_factor: float = Field(
        1.5, ge=1.0, le=10.0, description="Each retry multiplies the unlearning epochs by this."
    )
    max_p_percent: float = Field(
        10.0,
        gt=0.0,
        le=100.0,
        description="The ladder never selects more than this percentage of weights.",
    )
    max_epochs: int = Field(
        100, ge=1, le=10_000,
        description="The ladder never trains more epochs than this, nor may a ticket's privacy-schedule budget.",
    )
    ladder_lr_factor: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="When only retain or utility checks fail, each retry multiplies the learning rate by this.",
    )
    min_learning_rate: float = Field(
        1e-4, gt=0.0, description="The ladder never lowers the learning rate below this."
    )

    def next_rung(
        self,
        decision: GateDecision,
        rung: Rung,
        earlier: Sequence[tuple[Rung, GateDecision]] = (),
    ) -> Rung | None:
        """The retry ladder's next setting after a failed gate, or None at the policy's limits.

        A forget check that failed asks for stronger unlearning (larger p, more epochs); when only
        retain or utility checks failed, unlearning was too strong and the learning rate drops.
        Once a rung with the same p and epochs has failed the other way (`earlier` rounds), the
        right strength lies between the two, so the ladder bisects the learning rate
        (geometric mean) instead of overshooting again.
        """
        if not any(not c.passed and c.asks for c in decision.checks):
            return None  # nothing another setting could fix (e.g. privacy not checked)
        too_weak = _forgot_too_little(decision)
        opposite = [
            r.learning_rate
            for r, d in earlier
            if (r.p_percent, r.epochs) == (rung.p_percent, rung.epochs)
            and not d.passed
            and _forgot_too_little(d) != too_weak
        ]
        if opposite:
            bound = min(opposite, key=lambda lr: abs(math.log(lr / rung.learning_rate)))
            nxt = rung.model_copy(update={"learning_rate": math.sqrt(bound * rung.learning_rate)})
        elif too_weak:
            nxt = Rung(
                p_percent=min(rung.p_percent * self.ladder_p_factor, self.max_p_percent),
                epochs=min(math.ceil(rung.epochs * self.ladder_epochs_factor), self.max_epochs),
                learning_rate=rung.learning_rate,
            )
        else:
            nxt = rung.model_copy(
                update={"learning_rate": max(rung.learning_rate * self.ladder_lr_factor, self.min_learning_rate)}
            )
        return nxt if nxt != rung else None


def _forgot_too_little(decision: GateDecision) -> bool:
    """A failed check asks for stronger unlearning (forget bounds, MIA above its band)."""
    return any(not c.passed and c.asks == "stronger" for c in decision.checks)


class Rung(BaseModel):
    """The settings the ladder moves: share of weights, epochs and learning rate."""

    model_config = ConfigDict(frozen=True)

    p_percent: float
    epochs: int
    learning_rate: float


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
    name: str, metric: str, value: float | None, limit: float | None, label: str, *, at_most: bool,
    asks: str | None = "default",
) -> GateCheck:
    """`value` must be at most (or at least) `limit`; a metric that was not measured fails.

    By default a failed forget bound asks for stronger unlearning and a failed retain / utility
    bound for weaker."""
    if asks == "default":
        asks = "stronger" if metric.startswith("forget") else "weaker"
    if value is None or limit is None:
        detail, ok = f"{label} was not measured", False
    else:
        ok = value <= limit if at_most else value >= limit
        sign = ("≤" if ok else ">") if at_most else ("≥" if ok else "<")
        detail = f"{label} {value:.4f} {sign} {limit:.4f}"
    return GateCheck(name=name, metric=metric, value=value, limit=limit, passed=ok, detail=detail,
                     asks=None if ok else asks)


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
    forget, retain = after.get("forget_rougeL"), after.get("retain_rougeL")
    checks = [
        _check("forget_rougeL_abs", "forget_rougeL", forget, policy.forget_rougeL_max,
               "forget ROUGE-L", at_most=True),
        _check("forget_rougeL_rel", "forget_rougeL", forget,
               _times(policy.forget_rougeL_max_ratio, before.get("forget_rougeL")),
               "forget ROUGE-L vs parent", at_most=True),
        _check("retain_rougeL_rel", "retain_rougeL", retain,
               _times(policy.retain_rougeL_min_ratio, before.get("retain_rougeL")),
               "retain ROUGE-L vs parent", at_most=False),
    ]
    if "forget_keyword_acc" in before or "forget_keyword_acc" in after:
        keywords = after.get("forget_keyword_acc")
        checks += [
            _check("forget_keyword_acc_abs", "forget_keyword_acc", keywords, policy.forget_keyword_acc_max,
                   "forget keyword accuracy", at_most=True),
            _check("forget_keyword_acc_rel", "forget_keyword_acc", keywords,
                   _times(policy.forget_keyword_acc_max_ratio, before.get("forget_keyword_acc")),
                   "forget keyword accuracy vs parent", at_most=True),
        ]
    if "model_utility" in before or "model_utility" in after:
        checks.append(_check("model_utility_rel", "model_utility", after.get("model_utility"),
                             _times(policy.model_utility_min_ratio, before.get("model_utility")),
                             "model utility vs parent", at_most=False))
    if origin is not None:
        checks += _origin_checks(policy, origin, after)
    checks += privacy_checks(policy, after)
    failed = [c for c in checks if not c.passed]
    reason = ("passed: " + "; ".join(c.detail for c in checks) if not failed
              else "failed: " + "; ".join(c.detail for c in failed))
    return GateDecision(passed=not failed, reason=reason, checks=checks)


def _origin_checks(policy: GatePolicy, origin: Mapping[str, float], after: Mapping[str, float]) -> list[GateCheck]:
    checks = [_check("retain_rougeL_origin", "retain_rougeL", after.get("retain_rougeL"),
                     _times(policy.retain_rougeL_min_origin_ratio, origin.get("retain_rougeL")),
                     "retain ROUGE-L vs origin", at_most=False)]
    if "model_utility" in origin or "model_utility" in after:
        checks.append(_check("model_utility_origin", "model_utility", after.get("model_utility"),
                             _times(policy.model_utility_min_origin_ratio, origin.get("model_utility")),
                             "model utility vs origin", at_most=False))
    return checks


def non_member_auc(policy: GatePolicy) -> float:
    """The AUC a model that never saw the forget set would give against this line's holdout."""
    return 0.5 if policy.mia_reference_auc is None else policy.mia_reference_auc


PROBES = {  # metric key -> label; each is checked when the evaluation measured it
    "forget_paraphrase_rougeL": "forget ROUGE-L on paraphrased questions",
    "forget_format_max_rougeL": "forget ROUGE-L, worst other prompt format",
    "forget_int8_rougeL": "forget ROUGE-L of int8 fake-quantised weights",
    "forget_int4_rougeL": "forget ROUGE-L of int4 fake-quantised weights",
}


def privacy_checks(policy: GatePolicy, after: Mapping[str, float]) -> list[GateCheck]:
    """Membership inference in a band around the non-member level, forget vs holdout probability,
    and the robustness probes. Without a holdout measurement: one failing check saying privacy was
    not checked, unless the policy waives it."""
    if "mia_auc" not in after:
        return [] if policy.privacy_waived else [GateCheck(
            name="privacy_checked", metric="mia_auc", value=None, limit=None, passed=False,
            detail="privacy not checked: the eval suite has no holdout (non-member) part", asks=None)]
    level, band, auc = non_member_auc(policy), policy.mia_auc_band, after["mia_auc"]
    checks = [
        _check("mia_auc_high", "mia_auc", auc, level + band, "forget-vs-holdout MIA AUC", at_most=True,
               asks="stronger"),
        _check("mia_auc_low", "mia_auc", auc, max(level - band, 0.0),
               "forget-vs-holdout MIA AUC (over-unlearning)", at_most=False, asks="weaker"),
    ]
    if "forget_holdout_typical_prob_ratio" in after:
        checks.append(_check("forget_prob_vs_holdout", "forget_holdout_typical_prob_ratio",
                             after["forget_holdout_typical_prob_ratio"], policy.forget_holdout_prob_ratio_max,
                             "forget/holdout typical answer probability", at_most=True, asks="stronger"))
    for key, label in PROBES.items():
        if key in after:
            checks.append(_check(f"probe_{key}", key, after[key], policy.probe_rougeL_max, label, at_most=True))
    if "relearn_forget_rougeL" in after:
        checks.append(_check("probe_relearn", "relearn_forget_rougeL", after["relearn_forget_rougeL"],
                             policy.relearn_rougeL_max, "forget ROUGE-L after relearning half", at_most=True,
                             asks="stronger"))
    if "forget_sampled_best_rougeL" in after:
        checks.append(_check("probe_sampled", "forget_sampled_best_rougeL", after["forget_sampled_best_rougeL"],
                             policy.sampled_rougeL_max, "forget best-of-N sampled ROUGE-L", at_most=True))
    return checks


def nothing_to_forget(policy: GatePolicy, before: Mapping[str, float]) -> GateDecision | None:
    """A decision that the parent never learned the forget set, or None when there is work to do.

    The parent's own forget metrics already sit where the gate wants a candidate's: forget
    ROUGE-L at most `never_learned_rougeL_max`, keyword accuracy within its absolute bound, and,
    where measured, membership inference at chance (`mia_auc` at most `never_learned_mia_auc_max`)
    and the answers about as likely as the non-member holdout's (`never_learned_prob_ratio_max`).
    Unlearning such a set could only damage the model, so no version is registered.
    """
    checks = [_check("never_learned_rougeL", "forget_rougeL", before.get("forget_rougeL"),
                     policy.never_learned_rougeL_max, "parent's forget ROUGE-L", at_most=True)]
    if "forget_keyword_acc" in before:
        checks.append(_check("never_learned_keyword_acc", "forget_keyword_acc", before["forget_keyword_acc"],
                             policy.forget_keyword_acc_max, "parent's forget keyword accuracy", at_most=True))
    if "mia_auc" in before:
        checks.append(_check("never_learned_mia_auc", "mia_auc", before["mia_auc"],
                             policy.never_learned_mia_auc_max, "parent's forget-vs-holdout MIA AUC", at_most=True))
    # the typical (geometric-mean) ratio the gate reads when the evaluation gives it, else the means'
    ratio = before.get("forget_holdout_typical_prob_ratio", before.get("forget_holdout_prob_ratio"))
    if ratio is None and before.get("holdout_prob") and "forget_prob" in before:
        ratio = before["forget_prob"] / before["holdout_prob"]
    if ratio is not None:
        checks.append(_check("never_learned_prob", "forget_holdout_prob_ratio", ratio,
                             policy.never_learned_prob_ratio_max,
                             "parent's forget / holdout answer probability", at_most=True))
    if not all(c.passed for c in checks):
        return None
    return GateDecision(passed=True, reason="nothing to forget: " + "; ".join(c.detail for c in checks),
                        checks=checks)


def _times(ratio: float, value: float | None) -> float | None:
    return None if value is None else ratio * value
