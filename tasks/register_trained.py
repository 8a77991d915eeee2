"""Registering a freshly trained target model: the model line (if new) and its checkpoint as the next
version, aliased production (the `train-model` flow's last step)."""

from __future__ import annotations

from typing import Any

from prefect import task

from infra import registration
from infra.registry import NewVersion
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.resources import sessions
from tasks.retry import IO_RETRIES


@task(name="register-trained-model", task_run_name="register-{name}", **IO_RETRIES)
def register_trained(
    name: str,
    checkpoint: CheckpointRef,
    manifest: ObjectRef,
    eval_suite: ObjectRef | None,
    description: str,
    summary: dict[str, Any],
    gate_policy: dict[str, Any] | None = None,
) -> int:
    """Register the model line (if new) and the checkpoint as its next version, aliased production."""
    with sessions().begin() as session:
        registration.ensure_line(name, session=session, description=description, gate_policy=gate_policy)
        added = registration.register_version(
            name,
            NewVersion(
                checkpoint_uri=checkpoint.uri,
                checkpoint_sha256=checkpoint.sha256,
                training_manifest_uri=manifest.uri,
                training_manifest_sha256=manifest.sha256,
                eval_suite_uri=eval_suite.uri if eval_suite else None,
                hparams=summary,
            ),
            session=session,
            actor="train-model",
        )
        return added.version.version
