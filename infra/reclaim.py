"""The reclaimer: tickets whose run died go back to the queue, and what the dead run left is purged.

A run renews its tickets' leases while it is alive (each stage change and a heartbeat); a lease
that lapsed means the flow process died or lost the database. One sweep:
- moves every ticket in a leased stage past its lease to `failed`, then back to `queued` while it
  has attempts left (`infra.queue.reclaim_expired`; each move is an audit record);
- completes a `registered` ticket whose run died after registering (its version exists; only the
  follow-up was left);
- deletes the scratch copies of forget data of those tickets' runs (`scratch/<run id>/`, the run
  id names its first ticket: infra/run_ids.py) with an audit record of counts;
- deletes the candidate checkpoints those runs uploaded and no version registered (a candidate's
  card, `card.json`, names its run and tickets), so a dead run's candidate can never be registered or linger; and, on
  every sweep, any unregistered candidate none of whose tickets is held by a run any more (one a
  worker uploaded after its flow died and was swept).

It is run at the start of every flow run, at worker start and on a schedule by `grin serve`, so
recovery needs no one to remember it. Sweeps may overlap: rows are taken with SKIP LOCKED.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra import audit, queue
from infra.db.models import ModelVersion, Ticket
from infra.errors import ObjectNotFoundError
from infra.run_ids import first_ticket
from infra.storage import ObjectStore

CARD_DATA = "card.json"  # a checkpoint's card fields as JSON (grin_core.models.checkpoint.CARD_DATA)


@dataclass
class SweepReport:
    """Ticket ids by what the sweep did to them, and the scratch objects it deleted."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    flow_runs: dict[int, str] = field(default_factory=dict)  # ticket id -> its dead run's flow run
    scratch_objects: int = 0
    candidate_objects: int = 0

    @property
    def tickets(self) -> list[int]:
        return sorted([*self.requeued, *self.failed, *self.completed])


def scratch_runs(store: ObjectStore, ticket_ids: set[int]) -> dict[str, list[str]]:
    """Scratch keys by run id, for the runs whose label names one of `ticket_ids`."""
    runs: dict[str, list[str]] = {}
    for key in store.list("scratch/"):
        run_id = key.split("/")[1] if key.count("/") >= 2 else ""
        if first_ticket(run_id) in ticket_ids:
            runs.setdefault(run_id, []).append(key)
    return runs


def purge_scratch_of(ticket_ids: list[int], *, store: ObjectStore, session: Session, reason: str) -> int:
    """Delete the scratch objects of the runs of `ticket_ids`; one audit record of what went."""
    runs = scratch_runs(store, set(ticket_ids))
    for keys in runs.values():
        for key in keys:
            store.delete(key)
    count = sum(len(keys) for keys in runs.values())
    if runs:
        audit.append(
            "run.scratch_purged",
            {
                "run_ids": sorted(runs),
                "ticket_ids": sorted(ticket_ids),
                "scratch_objects": count,
                "reason": reason,
            },
            session=session,
        )
    return count


def _card(store: ObjectStore, sha: str) -> Mapping | None:
    """A checkpoint's card fields, {} when they are unreadable, None when it has no card."""
    try:
        data = store.get_bytes(f"checkpoints/{sha}/{CARD_DATA}")
    except ObjectNotFoundError:
        return None
    try:
        card = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return card if isinstance(card, Mapping) else {}


def _purge_candidates(
    store: ObjectStore, session: Session, doomed: Callable[[Mapping], bool], record: dict[str, object]
) -> int:
    """Delete every unregistered candidate checkpoint whose card `doomed` picks (manifest last,
    so a half-deleted one is never taken for complete); one audit record (`record` + what went)."""
    registered = set(session.scalars(select(ModelVersion.checkpoint_sha256)))
    deleted: dict[str, int] = {}
    for sha in sorted({k.split("/")[1] for k in store.list("checkpoints/") if k.count("/") >= 2} - registered):
        card = _card(store, sha)
        if card is not None and doomed(card):
            keys = store.list(f"checkpoints/{sha}/")
            for key in sorted(keys, key=lambda k: k.endswith("manifest.json")):
                store.delete(key)
            deleted[sha] = len(keys)
    if deleted:
        audit.append(
            "run.candidates_purged",
            {**record, "checkpoint_sha256": sorted(deleted), "objects": sum(deleted.values())},
            session=session,
        )
    return sum(deleted.values())


def purge_candidates_of(run_ids: list[str], *, store: ObjectStore, session: Session, reason: str) -> int:
    """Delete every unregistered candidate checkpoint whose card names one of `run_ids`."""
    if not run_ids:
        return 0
    runs = set(run_ids)
    return _purge_candidates(
        store, session, lambda card: card.get("run") in runs, {"run_ids": sorted(run_ids), "reason": reason}
    )


def _card_tickets(card: Mapping) -> set[int]:
    """The ticket ids a candidate's card names (its `deletions`), empty if it names none."""
    try:
        return {int(d["ticket_id"]) for d in card.get("deletions") or []}
    except (KeyError, TypeError, ValueError):
        return set()


def purge_stale_candidates(*, store: ObjectStore, session: Session) -> int:
    """Delete every unregistered candidate none of whose tickets a run holds any more.

    Such a candidate can never be registered (registration needs the lease): a worker that outlived
    its flow uploaded it after the sweep that reclaimed its tickets, or its run died mid-upload. A
    checkpoint whose card names no tickets (a line's first version on its way in) is left alone.
    """

    def unheld(card: Mapping) -> bool:
        tickets = _card_tickets(card)
        return (
            bool(tickets)
            and not set(session.scalars(select(Ticket.status).where(Ticket.id.in_(tickets)))) & queue.LEASED
        )

    return _purge_candidates(store, session, unheld, {"reason": "unregistered, and no run holds its tickets"})


def sweep(
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    max_attempts: int,
    now: datetime | None = None,
    purge_copies: Callable[[list[int]], object] | None = None,
) -> SweepReport:
    """Reclaim every lapsed lease and purge what those runs left in scratch.

    `purge_copies(ticket_ids)`, when given, runs first: the pipeline's purge of every copy of the
    tickets' forget text (it finds a crashed run's scratch by what the run wrote there); whatever
    scratch it leaves of those tickets' runs is then deleted here by run name.
    """
    report = SweepReport()
    with sessions.begin() as session:
        for ticket in queue.reclaim_expired(session=session, max_attempts=max_attempts, now=now):
            (report.requeued if ticket.status == queue.S.queued else report.failed).append(ticket.id)
            if ticket.flow_run_id:
                report.flow_runs[ticket.id] = ticket.flow_run_id
        for ticket in queue.expired_registered(session=session, now=now):
            queue.complete_orphaned(ticket, session=session)
            report.completed.append(ticket.id)
    if report.tickets:
        dead_runs = sorted(scratch_runs(store, set(report.tickets)))  # before any purge removes them
        if purge_copies is not None:
            purge_copies(report.tickets)
        with sessions.begin() as session:
            report.scratch_objects = purge_scratch_of(
                report.tickets, store=store, session=session, reason="lease expired"
            )
            report.candidate_objects = purge_candidates_of(
                dead_runs, store=store, session=session, reason="its run's lease expired"
            )
    with sessions.begin() as session:
        report.candidate_objects += purge_stale_candidates(store=store, session=session)
    return report
