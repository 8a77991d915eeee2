"""Calibration stage: a new model line's non-member AUC level, measured once on its first version."""

from __future__ import annotations

from prefect import task

from grin_core.evaluation.calibration import non_member_auc
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.inputs import load_model, read_json
from tasks.worker_liveness import reports_stage


@task(name="calibrate-line", task_run_name="calibrate-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def calibrate_line(label: str, checkpoint: CheckpointRef, eval_suite: ObjectRef) -> float | None:
    """Loss-MIA AUC of the suite's `calibration` records (training-like, never trained on) against its
    `holdout`; None when the suite lacks either (the gate then assumes 0.5)."""
    suite = read_json(eval_suite)
    if not suite.get("calibration") or not suite.get("holdout"):
        return None
    model, tokenizer = load_model(checkpoint)
    return round(non_member_auc(model, tokenizer, suite["calibration"], suite["holdout"]), 4)
