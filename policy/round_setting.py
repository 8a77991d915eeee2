"""One unlearning round's setting: the one schema of a round's hyper-parameters, as the ticket, the
gate report, the ladder, the tasks and the audit see it; and a tried round as the audit keeps it.

Everything else is derived from `RoundSetting`: the overrides a ticket may ask for
(`RoundSettingOverrides`: its `OVERRIDABLE` fields, optional, same bounds and descriptions), the
`--hparam` help of `grin ticket file`, and the gate policy's caps that bound both the ladder and a
ticket's overrides (`LADDER_CAPS`). A round's settings are stored and audited under the key
`hparams` (the ticket's request field, the database column, the audit payload); in code they are a
`setting`. The defaults are grin_core's (`UnlearnConfig`, `GrunConfig`), read off the configs'
fields, so this module never loads torch.
"""

from __future__ import annotations

from dataclasses import fields
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_serializer, model_validator

from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.unlearn_config import UnlearnConfig
from policy.methods import Method

if TYPE_CHECKING:
    from policy.gate import GateDecision
    from policy.gate_policy import GatePolicy


def _defaults(config: type) -> Any:
    """A grin_core config's defaults, read off its fields: building one would check it, which needs torch."""
    return SimpleNamespace(**{f.name: f.default for f in fields(config)})


_DEFAULTS = _defaults(UnlearnConfig)  # the service's unlearning defaults are grin_core's
_GRUN_DEFAULTS = _defaults(GrunConfig)
_GRUN_SCHEDULE = ("learning_rate", "epochs", "max_epochs", "batch_size", "retain_batch_size", "alpha")
GRIN_ONLY = ("p_percent", "sigma2")  # weight selection and noise: GRUN has neither
MAX_SEED = 2**32 - 1  # numpy's seed range, the narrowest of the generators a run seeds
MAX_P_PERCENT, MAX_EPOCHS = 100.0, 10_000  # also the outer bounds of the gate policy's caps
MAX_ALPHA = 1000.0  # the retain weight's bound (a ticket's and the ladder's)
_HELP = UnlearnConfig.help()


class RoundSetting(BaseModel):
    """Hyper-parameters of one unlearning round: the ticket's overrides over the service defaults.
    The retry ladder moves `p_percent`, `epochs` and `learning_rate` (ladder.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    method: Method = Method(_DEFAULTS.method)
    p_percent: float = Field(
        _DEFAULTS.p_percent, gt=0, le=MAX_P_PERCENT, description="Percentage of weights selected by GRI."
    )
    sigma2: float = Field(_DEFAULTS.sigma2, ge=0, description="Variance of the noise added to selected weights.")
    epochs: int = Field(_DEFAULTS.epochs, ge=1, le=MAX_EPOCHS, description=_HELP["epochs"])
    max_epochs: int = Field(
        _DEFAULTS.max_epochs,
        ge=1,
        le=MAX_EPOCHS,
        description="Epoch budget of the privacy schedule (it stops once in band).",
    )
    learning_rate: float = Field(_DEFAULTS.learning_rate, gt=0, le=1.0, description="AdamW learning rate.")
    beta: float = Field(_DEFAULTS.beta, gt=0, le=100.0, description="NPO temperature.")
    alpha: float = Field(_DEFAULTS.alpha, ge=0, le=MAX_ALPHA, description="Weight of the retain-set term.")
    seed: int = Field(_DEFAULTS.seed, ge=0, le=MAX_SEED, description=_HELP["seed"])
    batch_size: int = Field(_DEFAULTS.batch_size, ge=1, description=_HELP["batch_size"])
    retain_batch_size: int | None = Field(
        _DEFAULTS.retain_batch_size, ge=1, le=4096, description="Retain examples per step."
    )
    relearn_guard: float = Field(_DEFAULTS.relearn_guard, ge=0, le=100.0, description=_HELP["relearn_guard"])
    relearn_eps: float = Field(_DEFAULTS.relearn_eps, gt=0, le=0.1, description=_HELP["relearn_eps"])

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

    def describe(self, epochs_run: float | None = None) -> str:
        """One line for the gate report and the run log: what ran (`epochs_run`, when known) within
        which budget (the privacy schedule's `max_epochs`; `epochs` without a holdout)."""
        ran = (
            f"{epochs_run:g} epochs run of a {self.max_epochs}-epoch schedule budget"
            if epochs_run is not None
            else f"a {self.max_epochs}-epoch schedule budget ({self.epochs} epochs without a holdout)"
        )
        if not self.selects_weights:
            return f"GRUN (a gated intervention; the base weights unchanged), {ran}, lr {self.learning_rate:g}"
        return (
            f"GRIN-{self.method.value.upper()} on the top {self.p_percent:g}% of weights by GRI, {ran}, "
            f"noise σ²={self.sigma2:g}, lr {self.learning_rate:g}, retain weight {self.alpha:g}"
        )

    def unlearn_config(self) -> UnlearnConfig:
        """grin_core's config of a GRIN round at this setting."""
        return UnlearnConfig(**{**self.model_dump(), "method": self.method.value})

    def grun_config(self) -> GrunConfig:
        """grin_core's config of a GRUN round: the fields it shares with a GRIN round (its objective is NPO)."""
        return GrunConfig(**{k: getattr(self, k) for k in (*_GRUN_SCHEDULE, "beta", "seed")})


class RoundRecord(BaseModel):
    """One tried round as the audit trail and the run report keep it: what the ladder set, and the verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int
    p_percent: float | None  # None for GRUN: no weights selected
    epochs: int
    learning_rate: float
    passed: bool
    reason: str
    max_epochs: int | None = None  # the privacy schedule's budget
    alpha: float | None = None  # the retain term's weight
    epochs_run: float | None = None  # what the schedule ran (it stops once every check is in band)

    @classmethod
    def of(
        cls, round_no: int, setting: RoundSetting, decision: GateDecision, epochs_run: float | None = None
    ) -> RoundRecord:
        return cls(
            round=round_no,
            p_percent=setting.p_percent if setting.selects_weights else None,
            epochs=setting.epochs,
            max_epochs=setting.max_epochs,
            alpha=setting.alpha,
            epochs_run=epochs_run,
            learning_rate=setting.learning_rate,
            passed=decision.passed,
            reason=decision.reason,
        )


# What a ticket may set (the method is its own field of the request; the forget batch is the method's).
OVERRIDABLE = (
    "p_percent",
    "sigma2",
    "epochs",
    "max_epochs",
    "learning_rate",
    "beta",
    "alpha",
    "seed",
    "retain_batch_size",
    "relearn_guard",
    "relearn_eps",
)


def _optional(name: str) -> tuple[Any, Any]:
    """RoundSetting's field `name` as an optional override: same bounds and description, default None."""
    info = RoundSetting.model_fields[name]
    bounds = {k: getattr(c, k) for c in info.metadata for k in ("gt", "ge", "lt", "le") if hasattr(c, k)}
    return info.annotation | None, Field(None, description=info.description, **bounds)


def _no_booleans(cls: type, data: Any) -> Any:
    # pydantic reads true as 1 for a number; `p_percent=true` is a mistake, not a request for 1 %.
    if isinstance(data, dict):
        flags = sorted(k for k, v in data.items() if isinstance(v, bool))
        if flags:
            raise ValueError(f"{', '.join(flags)}: a number is expected, not a boolean")
    return data


RoundSettingOverrides = create_model(
    "RoundSettingOverrides",
    __config__=ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False),
    __doc__="Per-ticket overrides of a round's setting (RoundSetting's OVERRIDABLE fields); any other key is refused.",
    __validators__={"_no_booleans": model_validator(mode="before")(classmethod(_no_booleans))},
    **{name: _optional(name) for name in OVERRIDABLE},
)

# Setting field -> the gate policy's field that caps it: the ladder never moves past it, a ticket may not ask past it.
LADDER_CAPS = {"epochs": "max_epochs", "max_epochs": "max_epochs", "p_percent": "max_p_percent"}


def cap(policy: GatePolicy, name: str) -> float:
    """The policy's cap on setting field `name` (a key of LADDER_CAPS)."""
    return getattr(policy, LADDER_CAPS[name])


def overrides_help() -> str:
    """The `--hparam` help of `grin ticket file`: every key a ticket may set."""
    return f"KEY=VALUE override: {', '.join(OVERRIDABLE)} (GRIN only: {', '.join(GRIN_ONLY)})."
