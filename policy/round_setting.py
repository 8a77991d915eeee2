"""One unlearning round's setting, as the gate report, the ladder, the tasks and the audit see it,
and a tried round as the audit keeps it.

A ticket's hparams override its method's defaults, which are grin_core's (`UnlearnConfig`,
`GrunConfig`): read off the configs' fields, so this module never loads torch.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.unlearn_config import UnlearnConfig
from policy.gate import GateDecision
from policy.methods import Method


def _defaults(config: type) -> Any:
    """A grin_core config's defaults, read off its fields: building one would check it, which needs torch."""
    return SimpleNamespace(**{f.name: f.default for f in fields(config)})


_DEFAULTS = _defaults(UnlearnConfig)  # the service's unlearning defaults are grin_core's
_GRUN_DEFAULTS = _defaults(GrunConfig)
_GRUN_SCHEDULE = ("learning_rate", "epochs", "max_epochs", "batch_size", "retain_batch_size")
GRIN_ONLY = ("p_percent", "sigma2")  # weight selection and noise: GRUN has neither


class RoundSetting(BaseModel):
    """Hyper-parameters of one unlearning round: the ticket's overrides over the service defaults.
    The retry ladder moves `p_percent`, `epochs` and `learning_rate` (ladder.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = Method(_DEFAULTS.method)
    p_percent: float = Field(_DEFAULTS.p_percent, gt=0, le=100)
    sigma2: float = Field(_DEFAULTS.sigma2, ge=0)
    epochs: int = Field(_DEFAULTS.epochs, ge=1)
    max_epochs: int = Field(_DEFAULTS.max_epochs, ge=1)  # the privacy schedule's budget
    learning_rate: float = Field(_DEFAULTS.learning_rate, gt=0)
    beta: float = Field(_DEFAULTS.beta, gt=0)
    alpha: float = Field(_DEFAULTS.alpha, ge=0)
    seed: int = Field(_DEFAULTS.seed, ge=0)
    batch_size: int = Field(_DEFAULTS.batch_size, ge=1)
    retain_batch_size: int | None = Field(_DEFAULTS.retain_batch_size, ge=1)

    @classmethod
    def for_method(cls, method: Method | str, **overrides: Any) -> RoundSetting:
        """The ticket's overrides over its method's defaults: GRUN trains another kind of parameter
        (an intervention, not selected weights) on its authors' schedule (grin_core/unlearning/grun_train.py).
        p_percent and sigma2 have no meaning for GRUN (intake refuses them as overrides)."""
        base = {k: getattr(_GRUN_DEFAULTS, k) for k in _GRUN_SCHEDULE} if Method(method) is Method.grun else {}
        return cls(method=method, **{**base, **overrides})

    @model_serializer(mode="wrap")
    def _recorded(self, handler):
        """As the audit, the registry and the reports keep it: a GRUN round carries no p_percent or
        sigma2 (it selects no weights and adds no noise; they stay at the defaults, never read)."""
        data = handler(self)
        return data if self.selects_weights else {k: v for k, v in data.items() if k not in GRIN_ONLY}

    @property
    def selects_weights(self) -> bool:
        """GRIN scores and selects weights; GRUN trains an intervention and changes none."""
        return self.method is not Method.grun

    def describe(self) -> str:
        """One line for the gate report and the run log."""
        if not self.selects_weights:
            return (f"GRUN (a gated intervention; the base weights unchanged), {self.epochs} epochs, "
                    f"lr {self.learning_rate:g}")
        return (f"GRIN-{self.method.value.upper()} on the top {self.p_percent:g}% of weights by GRI, "
                f"{self.epochs} epochs, noise σ²={self.sigma2:g}, lr {self.learning_rate:g}")

    def unlearn_config(self) -> UnlearnConfig:
        """grin_core's config of a GRIN round at this setting."""
        return UnlearnConfig(**{**self.model_dump(), "method": self.method.value})

    def grun_config(self) -> GrunConfig:
        """grin_core's config of a GRUN round: the fields it shares with a GRIN round (its objective is NPO)."""
        return GrunConfig(**{k: getattr(self, k) for k in (*_GRUN_SCHEDULE, "alpha", "beta", "seed")})


class RoundRecord(BaseModel):
    """One tried round as the audit trail and the run report keep it: what the ladder set, and the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int
    p_percent: float | None  # None for GRUN: no weights selected
    epochs: int
    learning_rate: float
    passed: bool
    reason: str

    @classmethod
    def of(cls, round_no: int, setting: RoundSetting, decision: GateDecision) -> RoundRecord:
        return cls(round=round_no, p_percent=setting.p_percent if setting.selects_weights else None,
                   epochs=setting.epochs,
                   learning_rate=setting.learning_rate, passed=decision.passed, reason=decision.reason)
