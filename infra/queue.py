"""The ticket queue: claiming under a lease and the ticket state machine (filing: filing.py).

Functions take the caller's session and never commit: the caller decides the unit of work
(`with factory.begin() as session:`), so a status change and the audit record that reports
it always commit together. Row locks are taken before the audit chain's lock, in that order.

PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so claimers never wait on each other's rows;
SQLite serialises writers with `BEGIN IMMEDIATE` (see infra.db.session), so the same code is
correct there with one writer at a time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from infra import audit
from infra.db.base import utcnow
from infra.db.models import Ticket
from infra.errors import (
    IllegalTransitionError,
    LeaseLostError,
    TicketNotFoundError,
)
from infra.ticket_status import TicketStatus

S = TicketStatus

# The one place the allowed status changes are written down (flows/ticket_run.py makes them).
TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.queued: frozenset({S.claimed, S.rejected}),
    S.claimed: frozenset({S.assembling, S.queued, S.rejected, S.failed}),
    # Completed from assembling: the parent never learned the forget set (nothing to unlearn).
    # Unlearning from assembling: GRUN scores no weights.
    S.assembling: frozenset({S.scoring, S.unlearning, S.queued, S.rejected, S.failed, S.completed}),
    # A request's fault can surface in any stage (a parent checkpoint failing verification).
    S.scoring: frozenset({S.unlearning, S.queued, S.rejected, S.failed}),
    S.unlearning: frozenset({S.evaluating, S.queued, S.rejected, S.failed}),
    # The retry ladder goes back to scoring (larger p) or unlearning (more epochs).
    S.evaluating: frozenset({S.registered, S.scoring, S.unlearning, S.needs_review, S.queued, S.rejected, S.failed}),
    S.registered: frozenset({S.completed}),
    S.failed: frozenset({S.queued}),
    S.needs_review: frozenset({S.queued, S.rejected}),
    S.rejected: frozenset(),
    S.completed: frozenset(),
}
# Statuses in which a worker holds the ticket under a lease.
LEASED = frozenset({S.claimed, S.assembling, S.scoring, S.unlearning, S.evaluating, S.registered})
# A lapsed lease in these means the worker died mid-run; a registered ticket already has its
# version, so it is left for its flow to complete rather than unlearned again.
RECLAIMABLE = LEASED - {S.registered}
_REASON_KEPT = frozenset({S.failed, S.rejected, S.needs_review})


def get_ticket(ticket_id: int, *, session: Session, lock: bool = False) -> Ticket:
    ticket = session.get(Ticket, ticket_id, with_for_update=lock or None, populate_existing=lock)
    if ticket is None:
        raise TicketNotFoundError(f"no ticket {ticket_id}")
    return ticket


def list_tickets(
    *,
    session: Session,
    status: TicketStatus | None = None,
    model_name: str | None = None,
    limit: int = 100,
) -> list[Ticket]:
    query = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Ticket.status == status)
    if model_name is not None:
        query = query.where(Ticket.model_name == model_name)
    return list(session.scalars(query))


def queued_models(*, session: Session) -> list[str]:
    """Names of the models that have queued tickets, for the scheduled batch run."""
    query = select(Ticket.model_name).where(Ticket.status == S.queued).distinct()
    return sorted(session.scalars(query))


def _claimable(model_name: str | None) -> Select[tuple[Ticket]]:
    query = select(Ticket).where(Ticket.status == S.queued)
    if model_name is not None:
        query = query.where(Ticket.model_name == model_name)
    # Legal deadlines first, then first come first served.
    return query.order_by(Ticket.due_date.asc().nulls_last(), Ticket.id).with_for_update(skip_locked=True)


def claim(
    owner: str,
    lease_seconds: int,
    *,
    session: Session,
    model_name: str | None = None,
    now: datetime | None = None,
) -> Ticket | None:
    """Take the most urgent queued ticket under a lease, or None when there is none to take."""
    ticket = session.scalars(_claimable(model_name).limit(1)).first()
    if ticket is not None:
        _take(ticket, owner, lease_seconds, session=session, now=now)
    return ticket


def claim_ticket(
    ticket_id: int,
    owner: str,
    lease_seconds: int,
    *,
    session: Session,
    now: datetime | None = None,
) -> Ticket | None:
    """Take one ticket by id (a flow started for it), or None if it is not queued or another claim holds it."""
    query = select(Ticket).where(Ticket.id == ticket_id, Ticket.status == S.queued)
    ticket = session.scalars(query.with_for_update(skip_locked=True)).first()
    if ticket is not None:
        _take(ticket, owner, lease_seconds, session=session, now=now)
    return ticket


def claim_batch(
    model_name: str,
    max_tickets: int,
    owner: str,
    lease_seconds: int,
    *,
    session: Session,
    now: datetime | None = None,
) -> list[Ticket]:
    """Take up to `max_tickets` queued tickets of one model, for one unlearning run that answers them all."""
    tickets = list(session.scalars(_claimable(model_name).limit(max_tickets)))
    for ticket in tickets:
        _take(ticket, owner, lease_seconds, session=session, now=now)
    return tickets


def _take(ticket: Ticket, owner: str, lease_seconds: int, *, session: Session, now: datetime | None) -> None:
    ticket.attempts += 1
    ticket.lease_owner = owner
    ticket.lease_expires_at = (now or utcnow()) + timedelta(seconds=lease_seconds)
    _move(ticket, S.claimed, session=session, reason=f"attempt {ticket.attempts}", actor=owner)


def heartbeat(
    ticket_id: int, owner: str, lease_seconds: int, *, session: Session, now: datetime | None = None
) -> Ticket:
    """Extend the lease; LeaseLostError if `owner` no longer holds it. Not audited: no status changes."""
    ticket = held(ticket_id, owner, session=session)
    ticket.lease_expires_at = (now or utcnow()) + timedelta(seconds=lease_seconds)
    return ticket


def transition(
    ticket_id: int,
    to_status: TicketStatus,
    *,
    session: Session,
    reason: str | None = None,
    actor: str = "system",
    owner: str | None = None,
) -> Ticket:
    """Move a ticket along the state machine, with its audit record in the same transaction.

    With `owner`, the move happens only while that owner holds the lease.
    """
    ticket = held(ticket_id, owner, session=session) if owner else get_ticket(ticket_id, session=session, lock=True)
    _move(ticket, TicketStatus(to_status), session=session, reason=reason, actor=actor)
    return ticket


def release(ticket_id: int, owner: str, *, session: Session, reason: str = "released by its worker") -> Ticket:
    """Give a ticket back to the queue untried (a worker shutting down); the claim is not counted."""
    ticket = held(ticket_id, owner, session=session)
    ticket.attempts = max(ticket.attempts - 1, 0)
    _move(ticket, S.queued, session=session, reason=reason, actor=owner)
    return ticket


def complete(ticket_id: int, *, session: Session, owner: str | None = None, actor: str = "system") -> Ticket:
    """A registered ticket whose follow-up (artifacts, purge of scratch copies) is done."""
    return transition(ticket_id, S.completed, session=session, actor=owner or actor, owner=owner)


def reject(
    ticket_id: int,
    reason: str,
    *,
    session: Session,
    owner: str | None = None,
    actor: str = "system",
) -> Ticket:
    """Bad input: the ticket cannot be answered as filed, and will not be retried."""
    return transition(ticket_id, S.rejected, session=session, reason=reason, actor=owner or actor, owner=owner)


def fail(
    ticket_id: int,
    reason: str,
    *,
    session: Session,
    max_attempts: int,
    owner: str | None = None,
    actor: str = "system",
) -> Ticket:
    """An infrastructure failure: back to the queue while claims so far are fewer than `max_attempts`."""
    ticket = transition(ticket_id, S.failed, session=session, reason=reason, actor=owner or actor, owner=owner)
    _retry_if_allowed(ticket, max_attempts, session=session)
    return ticket


def reclaim_expired(*, session: Session, max_attempts: int, now: datetime | None = None) -> list[Ticket]:
    """Fail every ticket whose worker let its lease lapse; each is re-queued while it has attempts left."""
    query = (
        select(Ticket)
        .where(Ticket.status.in_(RECLAIMABLE), Ticket.lease_expires_at < (now or utcnow()))
        .order_by(Ticket.id)
        .with_for_update(skip_locked=True)
    )
    tickets = list(session.scalars(query))
    for ticket in tickets:
        _move(
            ticket,
            S.failed,
            session=session,
            reason=f"lease of {ticket.lease_owner} expired",
            actor="queue",
        )
        _retry_if_allowed(ticket, max_attempts, session=session)
    return tickets


def expired_registered(*, session: Session, now: datetime | None = None) -> list[Ticket]:
    """Registered tickets whose run died before completing them (their version exists: only the follow-up is left)."""
    query = (
        select(Ticket)
        .where(Ticket.status == S.registered, Ticket.lease_expires_at < (now or utcnow()))
        .order_by(Ticket.id)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def complete_orphaned(ticket: Ticket, *, session: Session) -> Ticket:
    """Complete a registered ticket whose run died after registering (see `expired_registered`)."""
    _move(
        ticket,
        S.completed,
        session=session,
        reason=f"completed by the reclaimer: lease of {ticket.lease_owner} expired after registration",
        actor="queue",
    )
    return ticket


REQUEUEABLE = frozenset({S.failed, S.needs_review, *RECLAIMABLE})


def requeue(
    ticket_id: int,
    *,
    session: Session,
    actor: str,
    reason: str,
    force: bool = False,
    now: datetime | None = None,
) -> Ticket:
    """An operator sends a ticket back to the queue, with a fresh set of attempts; audited.

    A ticket under a live lease is refused unless `force` (its worker may still be running: the
    old owner is locked out by the lease check on its next step either way).
    """
    ticket = get_ticket(ticket_id, session=session, lock=True)
    if ticket.status not in REQUEUEABLE:
        raise IllegalTransitionError(
            f"ticket {ticket_id} is {ticket.status.value}; only failed, needs_review or stuck tickets are requeued"
        )
    live = ticket.lease_expires_at is not None and ticket.lease_expires_at >= (now or utcnow())
    if ticket.status in RECLAIMABLE and live and not force:
        raise IllegalTransitionError(
            f"ticket {ticket_id} is {ticket.status.value} under a live lease of {ticket.lease_owner} "
            f"until {ticket.lease_expires_at.isoformat()}; pass --force to take it back anyway"
        )
    previous = ticket.attempts
    if ticket.status in RECLAIMABLE:
        _move(ticket, S.failed, session=session, reason=f"requeued by {actor}: {reason}", actor=actor)
    ticket.attempts = 0
    _move(
        ticket,
        S.queued,
        session=session,
        reason=f"requeued by {actor} after {previous} attempt(s): {reason}",
        actor=actor,
    )
    return ticket


def _retry_if_allowed(ticket: Ticket, max_attempts: int, *, session: Session) -> None:
    if ticket.attempts < max_attempts:
        reason = f"retry after attempt {ticket.attempts} of {max_attempts}"
        _move(ticket, S.queued, session=session, reason=reason, actor="queue")


def held(ticket_id: int, owner: str | None, *, session: Session) -> Ticket:
    """The ticket, locked, if `owner` holds its lease; LeaseLostError otherwise."""
    ticket = get_ticket(ticket_id, session=session, lock=True)
    if ticket.status not in LEASED or ticket.lease_owner != owner:
        raise LeaseLostError(f"ticket {ticket_id} is {ticket.status.value} and not leased to {owner!r}")
    return ticket


def _move(ticket: Ticket, to_status: TicketStatus, *, session: Session, reason: str | None, actor: str) -> None:
    from_status = ticket.status
    if to_status not in TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[from_status])) or "none: it is final"
        raise IllegalTransitionError(
            f"ticket {ticket.id}: {from_status.value} → {to_status.value} is not allowed "
            f"(from {from_status.value}: {allowed})"
        )
    ticket.status = to_status
    if to_status not in LEASED:
        ticket.lease_owner = None
        ticket.lease_expires_at = None
    if to_status in _REASON_KEPT and reason:
        ticket.error_reason = reason
    session.flush()
    audit.append(
        "ticket.transition",
        {
            "ticket_id": ticket.id,
            "from": from_status.value,
            "to": to_status.value,
            "reason": reason,
            "actor": actor,
        },
        session=session,
        ticket_id=ticket.id,
    )
