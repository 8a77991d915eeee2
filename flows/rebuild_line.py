"""Exact deletion on a schedule: rebuild a model line from its lineage manifest, so that every ticket
GRIN answered approximately since the last rebuild is deleted exactly.

`rebuild_line(model)` plans (the serving version's manifest and the tickets it covers, fixed at the
start), trains the line's recipe from scratch as an ML stage (the train task `train-model` uses; fine-
tuning from a base model does not exist yet), evaluates it on the line's suite (and, while the origin
manifest is stored, on the deleted records for the privacy rows), gates utility against the origin, and
registers a version of method `exact`. Tickets answered while it trained move the serving version: the
rebuild is then discarded (registering it would serve without their deletions) and the next one covers
them. A killed rebuild registered nothing; the next run cleans its scratch copy and starts again (the
training cache keeps a finished training). `model="*"` rebuilds every line its schedule says is due.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from infra.errors import ParentMovedError
from policy.gate import GateDecision
from tasks.contracts import EvalOutcome
from tasks.dispatch import run_ml_stage
from tasks.evaluate import evaluate_rebuilt
from tasks.purge import purge_after_run
from tasks.rebuild import (
    RebuildPlan,
    gate_rebuild,
    lines_due,
    plan_rebuild,
    purge_rebuild_scratch,
    register_exact,
)
from tasks.train import TrainOutcome, train_target


@flow(name="rebuild-line", flow_run_name="rebuild-{model}", persist_result=True)
def rebuild_line(model: str = "*", recipe: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rebuild `model` now, or with `*` every line due under its schedule; one summary per line.

    `recipe` overrides fields of the line's training recipe (a smaller budget in tests)."""
    if model == "*":
        due = lines_due()
        for name, reason in due.items():
            get_run_logger().info("%s is due for a rebuild: %s", name, reason)
        return [summary for name in due for summary in rebuild_line(name, recipe)]
    started = time.perf_counter()
    try:
        plan = plan_rebuild(model, recipe)
        if not plan.covers:
            return [{"model": model, "outcome": "nothing_to_do", "reason": "no ticket waits for exact deletion"}]
        trained, evaluated = _train_and_evaluate(model, plan)
        decision = gate_rebuild(model, plan, evaluated.metrics)
        summary = _summary(model, plan, trained, evaluated, decision)
        if not decision.passed:
            return [{**summary, "outcome": "gate_failed", "reason": decision.reason}]
        try:
            version = _register(model, plan, trained, evaluated, decision)
        except ParentMovedError as exc:
            return [{**summary, "outcome": "discarded", "reason": f"{exc}; the next rebuild covers them"}]
        purge_after_run(f"rebuild-{model}", [], "", superseded=True)  # the covered versions, past their grace
        return [
            {
                **summary,
                "outcome": "completed",
                "version": version,
                "rebuild_s": round(time.perf_counter() - started, 3),
            }
        ]
    finally:
        purge_rebuild_scratch(model)


def _train_and_evaluate(model: str, plan: RebuildPlan) -> tuple[TrainOutcome, EvalOutcome]:
    """The line's recipe trained from scratch on the plan's manifest, then evaluated on the line's suite
    (and the deleted records, for the privacy rows): two ML stages."""
    trained: TrainOutcome = run_ml_stage(
        train_target,
        label=f"rebuild-{model}",
        manifest=plan.manifest,
        model_config=plan.architecture,
        train_config=plan.recipe,
    )
    evaluated = run_ml_stage(
        evaluate_rebuilt,
        label=model,
        checkpoint=trained.checkpoint,
        eval_suite=plan.eval_suite,
        deleted=plan.deleted,
    )
    return trained, evaluated


def _summary(
    model: str, plan: RebuildPlan, trained: TrainOutcome, evaluated: EvalOutcome, decision: GateDecision
) -> dict[str, Any]:
    """What the rebuild did, whatever its outcome: what it covers, its cost, its metrics and its gate."""
    return {
        "model": model,
        "rebuilt_from_version": plan.parent_version,
        "covers": plan.covers,
        "manifest_sha256": plan.manifest.sha256,
        "manifest_count": plan.manifest_count,
        "train_s": trained.train_s,
        "epochs": trained.epochs,
        "eval_s": evaluated.seconds,
        "metrics": evaluated.metrics,
        "gate": decision.model_dump(mode="json"),
    }


def _register(
    model: str, plan: RebuildPlan, trained: TrainOutcome, evaluated: EvalOutcome, decision: GateDecision
) -> int:
    """The rebuilt checkpoint as a version of method `exact`, with its training's record; raises
    ParentMovedError when tickets answered meanwhile moved the serving version."""
    return register_exact(
        model,
        plan,
        trained.checkpoint,
        evaluated.metrics,
        decision,
        {
            "train_s": trained.train_s,
            "epochs": trained.epochs,
            "final_loss": trained.final_loss,
            "worker_pid": trained.worker.pid,
        },
    )
