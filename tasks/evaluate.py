"""Evaluation stage: TOFU/GRIN metrics of one checkpoint on a run's forget set and eval suite."""

from __future__ import annotations

import time

from prefect import task

from grin_core.evaluation.evaluate import EvalSuite, evaluate
from grin_core.evaluation.probes import run_probes
from tasks.contracts import CheckpointRef, EvalOutcome, ObjectRef, Snapshot, WorkerStamp
from tasks.inputs import device, load_model, read_json, read_records
from tasks.progress import StageSteps
from tasks.worker_liveness import reports_stage


@task(name="evaluate-checkpoint", task_run_name="evaluate-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def evaluate_checkpoint(
    label: str,
    checkpoint: CheckpointRef,
    snapshot: Snapshot,
    relearn: bool = False,
    seed: int = 0,
    probes: tuple[str, ...] | None = None,
) -> EvalOutcome:
    """Every metric the suite allows, then the robustness probes the line runs (`probes`, default every one:
    paraphrase, sampling, prompt formats, fake quantisation; relearning when the policy asks for it)."""
    started = time.perf_counter()
    model, tokenizer = load_model(checkpoint)
    parts = read_json(snapshot.eval_suite)
    # A tuple, not a set: Prefect's task key hashes the code's constants, and a set of strings is
    # ordered by the per-process hash seed, so a worker would compute another key and never pick
    # this stage up. The calibration part gives each attack's non-member level and the relearning level.
    known = ("retain", "real_authors", "world_facts", "holdout", "calibration")
    suite = EvalSuite(forget=read_records(snapshot.forget), **{k: v or None for k, v in parts.items() if k in known})
    steps = StageSteps(key=f"evaluate-{label}", label=f"evaluate-{label}")
    metrics = evaluate(model, tokenizer, suite, progress=False, on_step=steps.within(0.0, 0.6))
    metrics.update(
        run_probes(model, tokenizer, suite, probes=probes, relearn=relearn, seed=seed, on_step=steps.within(0.6, 1.0))
    )
    steps.finish()
    return EvalOutcome(
        metrics=metrics, seconds=round(time.perf_counter() - started, 3), worker=WorkerStamp.here(device())
    )


@task(name="evaluate-rebuilt", task_run_name="evaluate-rebuilt-{label}", persist_result=True)
@reports_stage
def evaluate_rebuilt(
    label: str, checkpoint: CheckpointRef, eval_suite: ObjectRef | None, deleted: ObjectRef | None
) -> EvalOutcome:
    """A rebuilt model's metrics on the line's eval suite; with the deleted records (rebuilt from the origin
    manifest into scratch) as its forget part, the privacy rows too, which say what a model that never
    saw them shows."""
    started = time.perf_counter()
    model, tokenizer = load_model(checkpoint)
    parts = read_json(eval_suite) if eval_suite else {}
    known = ("retain", "real_authors", "world_facts", "holdout", "calibration")
    suite = EvalSuite(
        forget=read_records(deleted) if deleted else None, **{k: v or None for k, v in parts.items() if k in known}
    )
    metrics = evaluate(model, tokenizer, suite, progress=False)
    return EvalOutcome(
        metrics=metrics, seconds=round(time.perf_counter() - started, 3), worker=WorkerStamp.here(device())
    )
