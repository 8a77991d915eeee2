"""Registering a freshly trained target model: the model line (if new) and its checkpoint as the next
version, aliased production (the `train-model` flow's last step)."""

from __future__ import annotations

from typing import Any

from prefect import task

from infra import registry
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
        try:
            registry.get_model(name, session=session)
        except LookupError:
            registry.register_model(
                name, session=session, description=description, gate_policy=gate_policy
            )
        version = registry.add_version(
            name,
            session=session,
            checkpoint_uri=checkpoint.uri,
            checkpoint_sha256=checkpoint.sha256,
            training_manifest_uri=manifest.uri,
            eval_suite_uri=eval_suite.uri if eval_suite else None,
            hparams=summary,
        )
        registry.set_alias(
            name, registry.PRODUCTION, version.version, session=session, actor="train-model"
        )
        return version.version
