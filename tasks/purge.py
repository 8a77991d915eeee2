"""Purge: the run's scratch copies of forget data and every unregistered candidate leave the store.

Only hashes and counts of what was deleted remain, in an audit record, so the deletion request is
not undone by the evidence kept for it.
"""

from __future__ import annotations

from prefect import task

from infra import audit
from infra.settings import get_settings
from infra.storage import locate
from tasks.checkpoint_store import delete_checkpoint
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES


@task(name="purge-scratch", task_run_name="purge-{label}", **IO_RETRIES)
def purge_scratch(label: str, run_id: str, ticket_ids: list[int], forget_snapshot: ObjectRef | None,
                  discarded_checkpoints: list[CheckpointRef], discarded_masks: list[ObjectRef]) -> dict[str, int]:
    store = object_store()
    scratch = store.list(f"scratch/{run_id}/")
    for key in scratch:
        store.delete(key)
    settings = get_settings()
    checkpoint_objects = sum(delete_checkpoint(ref, settings) for ref in discarded_checkpoints)
    for mask in discarded_masks:
        mask_store, key = locate(mask.uri, settings=settings)
        mask_store.delete(key)
    counts = {"scratch_objects": len(scratch), "candidate_checkpoint_objects": checkpoint_objects,
              "candidate_masks": len(discarded_masks)}
    with sessions().begin() as session:
        audit.append("run.scratch_purged", {
            "run_id": run_id, "ticket_ids": ticket_ids,
            "forget_snapshot_sha256": forget_snapshot.sha256 if forget_snapshot else None,
            "discarded_checkpoint_sha256": [ref.sha256 for ref in discarded_checkpoints],
            "discarded_mask_sha256": [m.sha256 for m in discarded_masks], **counts,
        }, session=session)
    return counts
