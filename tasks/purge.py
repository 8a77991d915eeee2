"""Purge: the run's scratch copies of forget data and every unregistered candidate leave the store.

Only hashes and counts of what was deleted remain, in an audit record, so the deletion request is
not undone by the evidence kept for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from sqlalchemy import select

from grin_core.data.records import RecordFormatError, forget_keys, parse_qa_records, text_key
from infra import audit, queue
from infra.db.models import ModelAlias, ModelVersion, Ticket
from infra.errors import InvalidRequestError, ObjectNotFoundError, UnsupportedURIError
from infra.settings import Settings, get_settings
from infra.storage import ObjectStore, locate, open_store
from infra.ticket_status import TicketStatus
from tasks.checkpoint_store import delete_checkpoint
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.progress_checkpoints import ROOT as PROGRESS_ROOT
from tasks.progress_checkpoints import ticket_ids_of
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES


@task(name="purge-scratch", task_run_name="purge-{label}", **IO_RETRIES)
def purge_scratch(
    label: str,
    run_id: str,
    ticket_ids: list[int],
    forget_snapshot: ObjectRef | None,
    discarded_checkpoints: list[CheckpointRef],
    discarded_masks: list[ObjectRef],
) -> dict[str, int]:
    store = object_store()
    scratch = store.list(f"scratch/{run_id}/")
    for key in scratch:
        store.delete(key)
    settings = get_settings()
    # Never a registered version's objects, whatever the caller believes (a registration whose
    # commit landed but whose task failed afterwards still names them).
    with sessions().begin() as session:
        registered = set(session.scalars(select(ModelVersion.checkpoint_sha256)))
        registered_masks = set(session.scalars(select(ModelVersion.mask_sha256)))
    discarded_checkpoints = [c for c in discarded_checkpoints if c.sha256 not in registered]
    discarded_masks = [m for m in discarded_masks if m.sha256 not in registered_masks]
    checkpoint_objects = sum(delete_checkpoint(ref, settings) for ref in discarded_checkpoints)
    for mask in discarded_masks:
        mask_store, key = locate(mask.uri, settings=settings)
        mask_store.delete(key)
    counts = {
        "scratch_objects": len(scratch),
        "candidate_checkpoint_objects": checkpoint_objects,
        "candidate_masks": len(discarded_masks),
    }
    with sessions().begin() as session:
        audit.append(
            "run.scratch_purged",
            {
                "run_id": run_id,
                "ticket_ids": ticket_ids,
                "forget_snapshot_sha256": forget_snapshot.sha256 if forget_snapshot else None,
                "discarded_checkpoint_sha256": [ref.sha256 for ref in discarded_checkpoints],
                "discarded_mask_sha256": [m.sha256 for m in discarded_masks],
                **counts,
            },
            session=session,
        )
    return counts


# --- every copy of a ticket's forget text, once the ticket has ended --------------------------

ENDED = frozenset({TicketStatus.completed, TicketStatus.rejected, TicketStatus.needs_review, TicketStatus.failed})
_TEXT_SUFFIXES = (".json", ".jsonl")


def _qa_rows(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping with a question/answer (or prompt/response) pair anywhere in a JSON value."""
    if isinstance(value, Mapping):
        if any(isinstance(value.get(k), str) for k in ("question", "answer", "prompt", "response")):
            yield value
        for child in value.values():
            if isinstance(child, list | dict):
                yield from _qa_rows(child)
    elif isinstance(value, list):
        for child in value:
            yield from _qa_rows(child)


def holds_forget_text(data: bytes, keys: set[str]) -> bool:
    """Whether a JSON / JSON Lines object repeats a forget question or answer (`text_key` match)."""
    try:
        text = data.decode("utf-8")
        try:
            values = [json.loads(text)]
        except json.JSONDecodeError:
            values = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    for row in (r for v in values for r in _qa_rows(v)):
        for field in ("question", "answer", "prompt", "response"):
            if isinstance(row.get(field), str) and text_key(row[field]) in keys:
                return True
    return False


def _runs_of(store: ObjectStore, ticket_ids: set[int]) -> list[str]:
    """Run ids whose scratch prefix names one of the tickets (`scratch/<run>/tickets.json`)."""
    runs = []
    for key in store.list("scratch/"):
        if key.endswith("/tickets.json"):
            try:
                named = set(json.loads(store.get_bytes(key)))
            except (ObjectNotFoundError, json.JSONDecodeError, TypeError):
                continue
            if named & ticket_ids:
                runs.append(key.split("/")[1])
    return runs


def _records_at(uri: str, settings: Settings) -> list[dict]:
    try:
        store, key = locate(uri, settings=settings)
        return parse_qa_records(store.get_bytes(key), source="forget object")
    except (ObjectNotFoundError, RecordFormatError, InvalidRequestError, UnsupportedURIError):
        return []


def purge_forget_copies(
    ticket_ids: list[int],
    *,
    run_ids: list[str] | None = None,
    actor: str = "system",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Delete every copy of these tickets' forget text that the service made; returns the counts.

    - the unlearning progress checkpoints of the tickets that have ended (`scratch/progress/`);
    - the scratch prefixes of their runs (`run_ids`, or every run whose `scratch/<run>/tickets.json`
      names one of them: a crashed run's leftovers), and a crashed run's own `runs/<run>/` objects;
    - every per-run object under `runs/` (retain snapshots of earlier runs) that repeats one of
      their forget questions or answers;
    - for the tickets that have ended (completed, rejected, needs_review, failed for good), the
      requester's forget and keywords objects, unless `keep_inbox_objects` is set.

    A ticket that went back to the queue keeps its inbox objects: its next run reads them. Call it
    when a ticket ends, and when the reclaimer hands back or finally fails a dead run's tickets
    (`run_ids=None` finds that run's scratch). One audit record (`ticket.forget_copies_purged`)
    names what went, by key and hash only.
    """
    settings = settings or get_settings()
    store = open_store(settings)
    wanted = set(ticket_ids)
    tickets, inbox = _tickets_and_inbox(wanted, settings)
    runs = list(run_ids) if run_ids is not None else _runs_of(store, wanted)
    keys = _forget_text_keys(tickets, runs, store, settings)

    deleted = _run_objects_to_delete(store, runs, keys, crashed=run_ids is None)
    scratch = [k for run in runs for k in store.list(f"scratch/{run}/")]
    ended = {t for t, (_, status) in inbox.items() if status in ENDED}
    progress = [
        k
        for k in store.list(PROGRESS_ROOT)  # unlearning progress is of no use once they end
        if ticket_ids_of(k) & ended
    ]
    inbox_deleted, inbox_kept = _purge_inbox(inbox, settings)
    for key in [*deleted, *scratch, *progress]:
        store.delete(key)
    counts = {
        "run_objects": len(deleted),
        "scratch_objects": len(scratch),
        "inbox_objects": len(inbox_deleted),
        "progress_objects": len(progress),
    }
    _audit_purge(settings, wanted, runs, actor, keys, deleted, scratch, inbox_deleted, inbox_kept, counts)
    return counts


def _tickets_and_inbox(wanted: set[int], settings: Settings) -> tuple[list[Ticket], dict[int, tuple[list[str], Any]]]:
    """The tickets, and each one's requester objects (forget and keywords URIs) with its status."""
    with sessions(settings).begin() as session:
        tickets = [queue.get_ticket(i, session=session) for i in sorted(wanted)]
        inbox = {t.id: ([*t.forget_uris, *([t.keywords_uri] if t.keywords_uri else [])], t.status) for t in tickets}
    return tickets, inbox


def _forget_text_keys(tickets: list[Ticket], runs: list[str], store: ObjectStore, settings: Settings) -> set[str]:
    """The `text_key`s of every forget question and answer: the tickets' own objects and the runs'
    forget snapshots (a ticket's objects may be gone already)."""
    forget = [r for t in tickets for uri in t.forget_uris for r in _records_at(uri, settings)]
    for run in runs:
        forget += _records_at(store.uri(f"scratch/{run}/forget.jsonl"), settings)
    return forget_keys(forget)


def _audit_purge(
    settings: Settings,
    wanted: set[int],
    runs: list[str],
    actor: str,
    keys: set[str],
    deleted: dict[str, str | None],
    scratch: list[str],
    inbox_deleted: list[str],
    inbox_kept: dict[int, str],
    counts: dict[str, int],
) -> None:
    """One `ticket.forget_copies_purged` record: what went, by key and hash only, never the text."""
    with sessions(settings).begin() as session:
        audit.append(
            "ticket.forget_copies_purged",
            {
                "ticket_ids": sorted(wanted),
                "run_ids": sorted(runs),
                "actor": actor,
                "forget_text_keys": len(keys),
                "deleted_run_objects": [{"key": k, "sha256": s} for k, s in sorted(deleted.items())],
                "scratch_keys": scratch,
                "inbox_deleted": inbox_deleted,
                "inbox": "deleted" if not inbox_kept else "kept for some tickets",
                "inbox_kept": inbox_kept,
                **counts,
            },
            session=session,
        )


def _run_objects_to_delete(store, runs: list[str], keys, *, crashed: bool) -> dict[str, str | None]:
    """Key -> sha256 of every object under `runs/` that repeats forget text (and, after a crash, every
    object of the crashed runs)."""
    deleted: dict[str, str | None] = {}
    for key in store.list("runs/"):
        run = key.split("/")[1]
        if (crashed and run in runs) or (
            keys and key.endswith(_TEXT_SUFFIXES) and holds_forget_text(store.get_bytes(key), keys)
        ):
            deleted[key] = store.head(key).sha256
    return deleted


def _purge_inbox(inbox: dict[int, tuple[list[str], Any]], settings: Settings) -> tuple[list[str], dict[int, str]]:
    """Delete the requester's objects of the tickets that have ended (unless kept by the settings):
    (the URIs deleted, ticket id -> why its objects were kept)."""
    inbox_deleted, inbox_kept = [], {}
    for ticket_id, (uris, status) in inbox.items():
        if status not in ENDED:
            inbox_kept[ticket_id] = f"ticket is {status.value}: its next run reads them"
        elif settings.keep_inbox_objects:
            inbox_kept[ticket_id] = "kept: keep_inbox_objects is set"
        else:
            for uri in uris:
                try:
                    owner_store, key = locate(uri, settings=settings)
                    owner_store.delete(key)
                    inbox_deleted.append(uri)
                except (InvalidRequestError, UnsupportedURIError):
                    inbox_kept[ticket_id] = "an object's URI could not be opened"
    return inbox_deleted, inbox_kept


@task(name="purge-forget-copies", task_run_name="purge-copies-{label}", **IO_RETRIES)
def purge_ticket_copies(label: str, ticket_ids: list[int], run_id: str) -> dict[str, Any]:
    """`purge_forget_copies` for the run that just ended its tickets."""
    return purge_forget_copies(ticket_ids, run_ids=[run_id], actor=label)


# --- superseded versions: their checkpoints and data go after a grace period -----------------


def purge_superseded_versions(
    *, settings: Settings | None = None, now: datetime | None = None
) -> list[tuple[str, int]]:
    """Purge the checkpoint, training manifest and eval suite of every version that holds data
    deleted by a later version for longer than `superseded_purge_days`; returns (model, version).

    An object another live version still names is kept; a version an alias points at is left
    alone (the override that moved the alias there is audited, and the alias must move first), and so
    is one whose checkpoint a live GRUN version applies its intervention to (its registration's audit
    record says that the base still holds the deleted data).
    """
    settings = settings or get_settings()
    if settings.superseded_purge_days is None:
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.superseded_purge_days)
    purged = []
    with sessions(settings).begin() as session:
        rows = session.scalars(select(ModelVersion).where(ModelVersion.purged_at.is_(None))).all()
        aliased = set(session.scalars(select(ModelAlias.version_id)))
        live = [v for v in rows if not v.holds_deleted_data_of]
        named = {u for v in live for u in (v.checkpoint_uri, v.training_manifest_uri, v.eval_suite_uri) if u}
        bases = {v.base_checkpoint_uri for v in live if v.base_checkpoint_uri}
        for version in rows:
            if (
                not version.holds_deleted_data_of
                or version.superseded_at is None
                or version.superseded_at > cutoff
                or version.id in aliased
            ):
                continue
            if version.checkpoint_uri in bases:  # a live GRUN version is served on these weights: kept, unpurged
                continue
            objects = 0
            if version.checkpoint_uri not in named:
                objects += delete_checkpoint(
                    CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256), settings
                )
            for uri in (version.training_manifest_uri, version.eval_suite_uri):
                if uri and uri not in named:
                    owner_store, key = locate(uri, settings=settings)
                    owner_store.delete(key)
                    objects += 1
            version.purged_at = datetime.now(UTC)
            audit.append(
                "model.version_purged",
                {
                    "model": version.model.name,
                    "version": version.version,
                    "checkpoint_sha256": version.checkpoint_sha256,
                    "training_manifest_sha256": version.training_manifest_sha256,
                    "holds_deleted_data_of": sorted(version.holds_deleted_data_of),
                    "objects_deleted": objects,
                    "grace_days": settings.superseded_purge_days,
                },
                session=session,
            )
            purged.append((version.model.name, version.version))
    return purged


@task(name="purge-superseded-versions", task_run_name="purge-superseded-{label}", **IO_RETRIES)
def purge_superseded(label: str) -> list[tuple[str, int]]:
    return purge_superseded_versions()


def purge_after_run(label: str, ticket_ids: list[int], run_id: str, *, superseded: bool) -> None:
    """The end of every run: its tickets' forget copies go, then (when it registered a version)
    the superseded versions past their grace period. A purge failure is logged, not raised: the
    run's own outcome stands, and the next purge of these tickets (reclaim, a rerun) repeats it."""
    try:
        if ticket_ids:
            purge_ticket_copies(label, ticket_ids, run_id)
        if superseded:
            purge_superseded(label)
    except Exception as exc:  # noqa: BLE001 - never mask the run's outcome or its original error
        get_run_logger().error("%s: purge of forget copies failed: %s", label, f"{type(exc).__name__}: {exc}"[:300])
