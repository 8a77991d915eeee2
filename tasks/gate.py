"""The evaluation gate as a task: the decision is returned, persisted, and shown as a markdown report."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact

from policy.gate import GateDecision, decide
from policy.gate_policy import GatePolicy
from policy.round_setting import RoundSetting


def gate_report(
    label: str, round_no: int, setting: RoundSetting, decision: GateDecision, epochs_run: float | None = None
) -> str:
    verdict = "PASSED" if decision.passed else "FAILED"
    lines = [
        f"# Evaluation gate — {label}, round {round_no}: {verdict}",
        "",
        f"Unlearning: {setting.describe(epochs_run)}.",
        "",
        "| check | metric | value | bound | result |",
        "|---|---|---|---|---|",
    ]
    for c in decision.checks:
        value = "—" if c.value is None else f"{c.value:.3f}"
        limit = "—" if c.limit is None else f"{c.limit:.3f}"
        lines.append(f"| {c.name} | {c.metric} | {value} | {limit} | {'pass' if c.passed else '**fail**'} |")
    lines += ["", f"**Reason:** {decision.reason}"]
    return "\n".join(lines)


@task(name="apply-gate", task_run_name="gate-{label}-round{round_no}", persist_result=True)
def apply_gate(
    label: str,
    round_no: int,
    setting: RoundSetting,
    policy: dict[str, Any],
    before: dict[str, float],
    after: dict[str, float],
    origin: dict[str, float] | None = None,
    epochs_run: float | None = None,
) -> GateDecision:
    """`origin`: the line's first version's metrics (the parent's own when it is the origin); `epochs_run`:
    what the round's schedule ran, which the report names beside its budget."""
    decision = decide(GatePolicy(**policy), before, after, origin)
    create_markdown_artifact(
        key=f"{label}-gate",
        markdown=gate_report(label, round_no, setting, decision, epochs_run),
        description=f"{label}: gate round {round_no} {'passed' if decision.passed else 'failed'}",
    )
    return decision
