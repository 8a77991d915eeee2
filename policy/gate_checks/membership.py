"""Membership inference: every attack's forget-vs-holdout AUC in a band around its own non-member
level, and the one failing check that says privacy was not checked when the suite had no holdout."""

from __future__ import annotations

from collections.abc import Mapping

from grin_core.metrics import names as m
from policy.gate_check import GateCheck, bound_check
from policy.gate_policy import GatePolicy
from policy.gate_registry import GateInputs

ATTACK_LABELS = {"loss": "loss", "zlib": "zlib", "mink": "Min-K%", "minkpp": "Min-K%++"}  # metrics/attacks.py


def privacy_checked(inputs: GateInputs) -> list[GateCheck]:
    """Without a holdout measurement: one failing check, unless the policy waives privacy."""
    if inputs.holdout_measured or inputs.policy.privacy_waived:
        return []
    return [
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


def attack_level(policy: GatePolicy, after: Mapping[str, float], attack: str) -> tuple[float, str]:
    """An attack's non-member level and where it comes from: measured on the candidate (never-seen
    calibration records against the holdout), else the line's recorded level (the loss attack), else 0.5."""
    if m.NONMEMBER_AUC[attack] in after:
        return after[m.NONMEMBER_AUC[attack]], "never-seen records"
    if attack == "loss" and policy.mia_reference_auc is not None:
        return policy.mia_reference_auc, "the line's calibration"
    return 0.5, "no calibration data"


def attack_band(policy: GatePolicy, after: Mapping[str, float], attack: str) -> list[GateCheck]:
    """Above the band asks for stronger unlearning (the forget set is still recognised), below it for
    weaker (over-unlearned: the forget set stands out the other way)."""
    metric = m.ATTACK_AUC[attack]
    level, source = attack_level(policy, after, attack)
    prefix = "mia" if attack == "loss" else f"mia_{attack}"  # the loss attack's checks keep their names
    label = f"{ATTACK_LABELS[attack]} attack AUC (level {level:.3f}, {source})"
    return [
        bound_check(
            f"{prefix}_auc_high",
            metric,
            after[metric],
            min(level + policy.mia_auc_band, 1.0),
            label,
            at_most=True,
            asks="stronger",
        ),
        bound_check(
            f"{prefix}_auc_low",
            metric,
            after[metric],
            max(level - policy.mia_auc_band, 0.0),
            f"{label}, over-unlearning",
            at_most=False,
            asks="weaker",
        ),
    ]


def attack_bands(inputs: GateInputs) -> list[GateCheck]:
    """The band of each attack the evaluation measured and the policy holds, in metrics/names.py's order."""
    checks = []
    for attack, metric in m.ATTACK_AUC.items():
        if metric in inputs.after and attack in inputs.policy.attacks:
            checks += attack_band(inputs.policy, inputs.after, attack)
    return checks
