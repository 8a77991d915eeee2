"""Filing a ticket: a validated request becomes a queued ticket and its `ticket.filed` audit record.

Idempotent by the request's key: the same key and request return the ticket it filed. Like the
queue (queue.py), it takes the caller's session and never commits. Use `infra.intake.file_request`
to check the model and the objects first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infra import audit
from infra.db.models import Ticket
from infra.errors import IdempotencyConflictError
from infra.ticket_request import TicketRequest
from infra.ticket_rows import row_sha256
from infra.ticket_status import TicketStatus

S = TicketStatus


def file_ticket(request: TicketRequest, *, session: Session, actor: str | None = None) -> Ticket:
    """Queue a validated request; the same idempotency key again returns the ticket it filed.

    Reusing a key for a different request raises IdempotencyConflictError. Use
    `infra.intake.file_request` to check the model and the objects first.
    """
    request_sha256 = request.sha256()
    if request.idempotency_key is not None:
        existing = _by_idempotency_key(request.idempotency_key, request_sha256, session=session)
        if existing is not None:
            return existing
    ticket = Ticket(
        subject=request.subject,
        model_name=request.model_name,
        model_ref=request.model,
        forget_uris=list(request.forget_uris),
        retain_uris=list(request.retain_uris) if request.retain_uris else None,
        keywords_uri=request.keywords_uri,
        method=request.method,
        hparams=request.hparam_overrides(),
        requested_by=request.requested_by,
        legal_basis=request.legal_basis,
        due_date=request.due_date,
        status=S.queued,
        attempts=0,
        idempotency_key=request.idempotency_key,
        request_sha256=request_sha256,
    )
    try:
        with session.begin_nested():
            session.add(ticket)
    except IntegrityError:
        # Another process filed the same key between our look-up and insert.
        if request.idempotency_key is None:
            raise
        existing = _by_idempotency_key(request.idempotency_key, request_sha256, session=session)
        if existing is None:
            raise
        return existing
    audit.append(
        "ticket.filed",
        {
            "ticket_id": ticket.id,
            "to": S.queued.value,
            "model_ref": ticket.model_ref,
            "method": ticket.method.value,
            "subject_sha256": audit.sha256_hex(ticket.subject),
            "request_sha256": request_sha256,
            "forget_uri_count": len(ticket.forget_uris),
            "requested_by": ticket.requested_by,
            "legal_basis": ticket.legal_basis,
            "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
            "actor": actor or ticket.requested_by,
            # every request field of the row as filed: `audit verify` holds the row to it (infra.ticket_rows)
            "ticket_row_sha256": row_sha256(ticket),
        },
        session=session,
        ticket_id=ticket.id,
    )
    return ticket


def _by_idempotency_key(key: str, request_sha256: str, *, session: Session) -> Ticket | None:
    ticket = session.scalar(select(Ticket).where(Ticket.idempotency_key == key))
    if ticket is not None and ticket.request_sha256 != request_sha256:
        raise IdempotencyConflictError(f"idempotency key {key!r} was used for a different request (ticket {ticket.id})")
    return ticket
