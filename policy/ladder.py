"""The retry ladder: after a failed gate, the next round's setting, and whether it needs new scores.

Each failed check says which way it points (`GateCheck.asks`), and the move answers the check:
- a forget check or an attack above its band asks for stronger unlearning: larger p, more epochs
  and a larger privacy-schedule budget;
- retain or utility checks alone: the candidate forgot enough but damaged what it keeps, and
  lowering the learning rate only slowed both forgetting and repair (a line's rounds 2-4 each got
  worse). The retain term's weight doubles and the schedule's budget grows, so the round repairs
  more within its band;
- an attack below its band alone (over-unlearned): the learning rate drops.
Once a round with the same p and epochs has failed the other way, the right strength lies between
the two, so the ladder bisects the learning rate (geometric mean) instead of overshooting again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from policy.gate import GateDecision
from policy.gate_policy import GatePolicy
from policy.round_setting import MAX_ALPHA, RoundSetting, cap

Tried = tuple[RoundSetting, GateDecision]


class NextRound(BaseModel):
    """The ladder's answer: the setting to try, and whether its mask must be scored again (p moved)."""

    model_config = ConfigDict(frozen=True)

    setting: RoundSetting
    rescore: bool


def next_round(policy: GatePolicy, tried: Sequence[Tried]) -> NextRound | None:
    """What to try after the rounds `tried` (oldest first; the last is the one just gated), or None:
    the last passed, the policy's `max_rounds` are used up, or no other setting could help."""
    setting, decision = tried[-1]
    if decision.passed or len(tried) >= policy.max_rounds:
        return None
    nxt = next_setting(policy, decision, setting, tried[:-1])
    if nxt is None:
        return None
    return NextRound(setting=nxt, rescore=setting.selects_weights and nxt.p_percent != setting.p_percent)


def next_setting(
    policy: GatePolicy, decision: GateDecision, setting: RoundSetting, earlier: Sequence[Tried] = ()
) -> RoundSetting | None:
    """The setting after `setting` failed with `decision`, or None at the policy's limits.

    `earlier`: the rounds before it, with their decisions (the bisection reads them)."""
    if not any(not c.passed and c.asks for c in decision.checks):
        return None  # nothing another setting could fix (e.g. privacy not checked)
    too_weak = _forgot_too_little(decision)
    opposite = [
        r.learning_rate
        for r, d in earlier
        if (r.p_percent, r.epochs) == (setting.p_percent, setting.epochs)
        and not d.passed
        and _forgot_too_little(d) != too_weak
    ]
    if opposite:
        bound = min(opposite, key=lambda lr: abs(math.log(lr / setting.learning_rate)))
        nxt = setting.model_copy(update={"learning_rate": math.sqrt(bound * setting.learning_rate)})
    elif too_weak:
        more = {"epochs": _grown(policy, setting, "epochs"), "max_epochs": _grown(policy, setting, "max_epochs")}
        if setting.selects_weights:  # GRUN selects no weights: only its training grows
            more["p_percent"] = min(setting.p_percent * policy.ladder_p_factor, cap(policy, "p_percent"))
        nxt = setting.model_copy(update=more)
    elif _damaged_what_it_keeps(decision):
        nxt = setting.model_copy(
            update={
                "alpha": min(setting.alpha * policy.ladder_alpha_factor, MAX_ALPHA),
                "max_epochs": _grown(policy, setting, "max_epochs"),
            }
        )
    else:
        nxt = setting.model_copy(
            update={"learning_rate": max(setting.learning_rate * policy.ladder_lr_factor, policy.min_learning_rate)}
        )
    return nxt if nxt != setting else None


def _grown(policy: GatePolicy, setting: RoundSetting, name: str) -> int:
    """An epoch count times the ladder's factor, within the policy's cap."""
    return min(math.ceil(getattr(setting, name) * policy.ladder_epochs_factor), cap(policy, name))


def _damaged_what_it_keeps(decision: GateDecision) -> bool:
    """A failed check on retain or utility (not a privacy check asking for weaker unlearning)."""
    return any(
        not c.passed and c.asks == "weaker" and not c.metric.startswith(("mia", "nonmember")) for c in decision.checks
    )


def _forgot_too_little(decision: GateDecision) -> bool:
    """A failed check asks for stronger unlearning (forget bounds, MIA above its band)."""
    return any(not c.passed and c.asks == "stronger" for c in decision.checks)
