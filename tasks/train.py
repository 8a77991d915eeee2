"""Target-model training stage: a from-scratch model on a QA manifest (cached by config and data)."""

from __future__ import annotations

from typing import Any

from prefect import task

from grin_core.models.checkpoint import load_grin_config
from grin_core.models.tiny_llama import TinyLlamaConfig
from grin_core.models.train import TrainConfig, train_or_load
from infra.settings import get_settings
from tasks.checkpoint_store import upload_checkpoint
from tasks.contracts import CheckpointRef, Frozen, ObjectRef, WorkerStamp
from tasks.inputs import device, read_records
from tasks.progress import EpochLog, PrefectProgress
from tasks.resources import object_store
from tasks.worker_liveness import reports_stage


class TrainOutcome(Frozen):
    checkpoint: CheckpointRef
    train_s: float
    epochs: int
    final_loss: float | None
    worker: WorkerStamp


@task(name="train-target", task_run_name="train-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def train_target(
    label: str, manifest: ObjectRef, model_config: dict[str, Any], train_config: dict[str, Any]
) -> TrainOutcome:
    records = read_records(manifest)
    cache = get_settings().cache_dir / "models"
    callbacks = [PrefectProgress(key=f"training-{label}", description=f"{label}: training"), EpochLog(label)]
    directory = train_or_load(
        records,
        TinyLlamaConfig(**model_config),
        TrainConfig(**train_config),
        cache,
        progress=False,
        callbacks=callbacks,
    )
    info = load_grin_config(directory)
    history = info.get("history", [])
    return TrainOutcome(
        checkpoint=upload_checkpoint(directory, object_store()),
        train_s=float(info.get("train_seconds", 0.0)),
        epochs=len(history),
        final_loss=history[-1]["loss"] if history else None,
        worker=WorkerStamp.here(device()),
    )
