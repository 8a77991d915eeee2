"""The gate's checks by name: each entry turns the candidate's metrics into zero or more `GateCheck`s.

The registry's order is a decision's order (gate_checks/__init__.py registers the gate's own). A new
check is a function of `GateInputs` plus one `GATE_CHECKS.register(name, GateRule(run))` line; asking
the gate for a name that is not registered raises with the known ones (grin_core/registry.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from grin_core.metrics import names as m
from grin_core.registry import Registry
from policy.gate_check import GateCheck
from policy.gate_policy import GatePolicy


@dataclass(frozen=True)
class GateInputs:
    """What a check may read: the policy, the parent's (`before`) and the candidate's (`after`) metrics,
    and the line's origin's (None when the gate does not hold the candidate to the origin)."""

    policy: GatePolicy
    before: Mapping[str, float]
    after: Mapping[str, float]
    origin: Mapping[str, float] | None = None

    @property
    def holdout_measured(self) -> bool:
        """The evaluation had a non-member holdout, so the privacy checks have something to read."""
        return m.MIA_AUC in self.after


@dataclass(frozen=True)
class GateRule:
    """A registered check: `run` gives its checks (none when its metrics were not measured).

    `needs_holdout`: it reads the holdout measurements and is skipped without them; the
    `privacy_checked` rule is the one failing check that says so."""

    run: Callable[[GateInputs], list[GateCheck]]
    needs_holdout: bool = False


GATE_CHECKS: Registry[GateRule] = Registry("gate check")
