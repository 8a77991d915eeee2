"""Train a target model from a QA manifest in storage and register it as version 1 of a model line.

Used by the demo and the benchmark; in production a model line is registered from an existing
checkpoint instead (`grin model register` + a version pointing at its checkpoint).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.calibrate import calibrate_line
from tasks.contracts import ObjectRef
from tasks.dispatch import run_ml_stage
from tasks.register_trained import register_trained
from tasks.train import TrainOutcome, train_target


@flow(name="train-model", flow_run_name="train-{name}", persist_result=True)
def train_line(
    name: str,
    manifest: ObjectRef,
    eval_suite: ObjectRef | None = None,
    architecture: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    description: str = "",
    gate_policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or reuse a cached) target model on `manifest` and register it under `name`.

    `architecture` sets TinyLlamaConfig fields and `recipe` TrainConfig fields (defaults otherwise);
    `gate_policy` holds the model line's overrides of the service's gate policy (new lines only).
    An eval suite with `calibration` and `holdout` parts sets the line's `mia_reference_auc`: the
    non-member level measured on this version (grin_core/evaluation/calibration.py), not a relaxation.
    """
    outcome: TrainOutcome = run_ml_stage(
        train_target,
        label=name,
        manifest=manifest,
        model_config=architecture or {},
        train_config=recipe or {},
    )
    reference_auc = (
        run_ml_stage(calibrate_line, label=name, checkpoint=outcome.checkpoint, eval_suite=eval_suite)
        if eval_suite
        else None
    )
    if reference_auc is not None and "mia_reference_auc" not in (gate_policy or {}):
        gate_policy = {**(gate_policy or {}), "mia_reference_auc": reference_auc}
    summary = {
        "trained_from_scratch": True,
        "mia_reference_auc": reference_auc,
        "epochs": outcome.epochs,
        "final_loss": outcome.final_loss,
        "train_s": outcome.train_s,
        "architecture": architecture or {},
        "recipe": recipe or {},
        "manifest_sha256": manifest.sha256,
    }
    version = register_trained(name, outcome.checkpoint, manifest, eval_suite, description, summary, gate_policy)
    return {
        "model": name,
        "version": version,
        "checkpoint": outcome.checkpoint.model_dump(),
        "train_s": outcome.train_s,
        "epochs": outcome.epochs,
        "worker_pid": outcome.worker.pid,
        "mia_reference_auc": reference_auc,
    }
