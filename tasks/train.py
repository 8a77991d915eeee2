"""Target-model training stage: a from-scratch model on a QA manifest (cached by config and data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from grin_core.models.checkpoint import load_grin_config
from grin_core.models.fit import BUDGET, training_run
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
    """A trained checkpoint and how its run went: `stopped_by` says whether its stop loss ("stop_loss") or
    its budget ("budget": every epoch ran, the stop loss not reached) ended it; `recipe` is every field."""

    checkpoint: CheckpointRef
    train_s: float
    epochs: int
    final_loss: float | None
    stopped_by: str
    recipe: dict[str, Any]
    worker: WorkerStamp
    architecture: dict[str, Any] = {}  # a from-scratch model's whole TinyLlamaConfig

    @property
    def short_of_stop_loss(self) -> bool:
        """Its budget ended it with its stop loss not reached: under-trained by its own recipe's measure."""
        return self.stopped_by == BUDGET and self.recipe.get("stop_loss") is not None


def training_callbacks(label: str) -> list:
    """The progress artifact and the per-epoch log line of a training stage."""
    return [PrefectProgress(key=f"training-{label}", description=f"{label}: training"), EpochLog(label)]


def outcome(directory: Path) -> TrainOutcome:
    """Upload a trained checkpoint and report its run as its grin_config.json records it."""
    run = training_run(directory)
    return TrainOutcome(
        checkpoint=upload_checkpoint(directory, object_store()),
        train_s=run.seconds,
        epochs=run.epochs,
        final_loss=run.final_loss,
        stopped_by=run.stopped_by,
        recipe=run.recipe,
        worker=WorkerStamp.here(device()),
        architecture=load_grin_config(directory).get("model_config") or {},
    )


@task(name="train-target", task_run_name="train-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def train_target(
    label: str, manifest: ObjectRef, model_config: dict[str, Any], train_config: dict[str, Any]
) -> TrainOutcome:
    records = read_records(manifest)
    cache = get_settings().cache_dir / "models"
    directory = train_or_load(
        records,
        TinyLlamaConfig(**model_config),
        TrainConfig(**train_config),
        cache,
        progress=False,
        callbacks=training_callbacks(label),
    )
    return outcome(directory)
