"""Ticket status changes: each is one transaction with its audit record (I/O, so retried).

Every stage change also renews the lease, so a run that is alive keeps its tickets and a run that
died lets `reclaim_expired` hand them back to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import task
from prefect.runtime import flow_run

from infra import queue
from infra.audit_heads import publish_current_head
from infra.settings import get_settings
from infra.ticket_status import TicketStatus
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES


@task(name="claim-ticket", task_run_name="claim-ticket-{ticket_id}", **IO_RETRIES)
def claim_ticket(ticket_id: int, owner: str) -> bool:
    """Claim one queued ticket by id; False when it is not queued (already taken or finished)."""
    with sessions().begin() as session:
        ticket = queue.claim_ticket(ticket_id, owner, get_settings().lease_seconds, session=session)
        if ticket is not None:
            ticket.flow_run_id = _flow_run_id()
        return ticket is not None


@task(name="claim-batch", task_run_name="claim-batch-{model_name}", **IO_RETRIES)
def claim_batch(model_name: str, max_tickets: int, owner: str) -> list[int]:
    with sessions().begin() as session:
        tickets = queue.claim_batch(model_name, max_tickets, owner, get_settings().lease_seconds, session=session)
        for ticket in tickets:
            ticket.flow_run_id = _flow_run_id()
        return [t.id for t in tickets]


def _flow_run_id() -> str | None:
    return str(flow_run.id) if flow_run.id else None


@contextmanager
def keep_leases(ticket_ids: list[int], owner: str, every_s: float | None = None) -> Iterator[None]:
    """Renew the leases of `ticket_ids` from a background thread while the block runs.

    A healthy stage longer than the lease (unlearning a large model) keeps its tickets; a process
    that dies stops renewing, and the reclaimer takes them back one lease later. A ticket the run
    no longer holds (finished, released, reclaimed) is skipped.
    """
    lease = get_settings().lease_seconds
    interval = every_s or max(lease / 3, 1.0)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(interval):
            for ticket_id in ticket_ids:
                try:
                    with sessions().begin() as session:
                        queue.heartbeat(ticket_id, owner, lease, session=session)
                except queue.LeaseLostError:
                    continue
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                    logging.getLogger(__name__).warning("heartbeat of ticket %d failed: %s", ticket_id, exc)

    thread = threading.Thread(target=renew, name=f"lease-heartbeat-{owner}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


@task(name="queued-models", **IO_RETRIES)
def queued_models() -> list[str]:
    with sessions().begin() as session:
        return queue.queued_models(session=session)


@task(name="advance-tickets", task_run_name="{status}-{label}", **IO_RETRIES)
def advance(label: str, ticket_ids: list[int], status: TicketStatus, owner: str, reason: str | None = None) -> None:
    """Move every ticket of the run to `status` while `owner` holds it (a retry that already did is a no-op)."""
    lease = get_settings().lease_seconds
    with sessions().begin() as session:
        for ticket_id in ticket_ids:
            if queue.get_ticket(ticket_id, session=session, lock=True).status != status:
                queue.transition(ticket_id, status, session=session, reason=reason, actor=owner, owner=owner)
            if status in queue.LEASED:
                queue.heartbeat(ticket_id, owner, lease, session=session)


@task(name="finish-tickets", task_run_name="{outcome}-{label}", **IO_RETRIES)
def finish(label: str, ticket_ids: list[int], outcome: str, owner: str, reason: str | None = None) -> None:
    """End the run's hold on its tickets: completed, needs_review, rejected, failed (re-queued if allowed)
    or requeued (handed back untried: the run lost the race to register, see ParentMovedError)."""
    settings = get_settings()
    with sessions().begin() as session:
        for ticket_id in ticket_ids:
            ticket = queue.get_ticket(ticket_id, session=session, lock=True)
            if ticket.status.value == outcome or ticket.lease_owner != owner:
                continue  # a retry of this task, or the lease already went elsewhere
            if outcome == "failed" and ticket.status == TicketStatus.registered:
                continue  # its version is registered: a failure in the follow-up does not undo that
            if outcome == "completed":
                queue.complete(ticket_id, session=session, owner=owner)
            elif outcome == "needs_review":
                queue.transition(
                    ticket_id, TicketStatus.needs_review, session=session, reason=reason, actor=owner, owner=owner
                )
            elif outcome == "rejected":
                queue.reject(ticket_id, reason or "rejected", session=session, owner=owner)
            elif outcome == "requeued":
                queue.release(ticket_id, owner, session=session, reason=reason or "handed back")
            elif outcome == "failed":
                queue.fail(
                    ticket_id, reason or "failed", session=session, owner=owner, max_attempts=settings.max_attempts
                )
            else:
                raise ValueError(f"unknown outcome {outcome!r}")
    publish_chain_head()


def publish_chain_head() -> str | None:
    """Write the audit chain's head to the store (`audit/heads/`), so a database rewrite is caught."""
    with sessions().begin() as session:
        return publish_current_head(session=session, store=object_store())
