"""The base a `train-model` run fine-tunes: the registered version its `base` reference names, checked
(infra/base_versions.py) and pinned to its number and checkpoint before anything trains."""

from __future__ import annotations

from prefect import task

from infra.base_versions import fine_tune_base
from tasks.contracts import BaseVersion, CheckpointRef, Deletion
from tasks.resources import sessions
from tasks.retry import IO_RETRIES


@task(name="resolve-base", task_run_name="resolve-base-{ref}", **IO_RETRIES)
def resolve_base(ref: str) -> BaseVersion:
    """The version `ref` names, pinned; a GrinError in one line when a line may not be fine-tuned from it."""
    with sessions().begin() as session:
        version = fine_tune_base(ref, session=session)
        return BaseVersion(
            model=version.model.name,
            version=version.version,
            checkpoint=CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256),
            lineage_deletions=[Deletion(**d) for d in version.lineage_deletions or []],
        )
