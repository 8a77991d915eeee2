"""One gate check: a threshold compared with one metric, and the way its failure points the ladder.

Every check of the gate (gate_checks/) is built by `bound_check`, so a check's detail reads the same
whichever family made it, and a metric no evaluation reports is refused where the check is written.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from grin_core.metrics import names as m


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


def bound_check(
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


def times(ratio: float, value: float | None) -> float | None:
    """A parent- or origin-relative bound: `ratio` times the reference, None where it was not measured."""
    return None if value is None else ratio * value
