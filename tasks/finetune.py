"""Fine-tuning stage: a registered base checkpoint fine-tuned on a QA manifest (cached by the base's
sha256, the recipe and the data); the base is fetched and verified against its registered sha256."""

from __future__ import annotations

from typing import Any

from prefect import task

from grin_core.models.finetune import FinetuneConfig, finetune_or_load
from infra.settings import get_settings
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.inputs import read_records
from tasks.train import TrainOutcome, outcome, training_callbacks
from tasks.worker_liveness import reports_stage


@task(name="finetune-target", task_run_name="finetune-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def finetune_target(label: str, manifest: ObjectRef, base: CheckpointRef, recipe: dict[str, Any]) -> TrainOutcome:
    directory = finetune_or_load(
        read_records(manifest),
        fetch_checkpoint(base),
        FinetuneConfig(**recipe),
        get_settings().cache_dir / "models",
        progress=False,
        callbacks=training_callbacks(label),
    )
    return outcome(directory)
