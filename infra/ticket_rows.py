"""A ticket row's request fields checked against its `ticket.filed` audit record.

The chain is tamper-evident, the tickets table is not, and a run reads what to forget (forget URIs,
model ref, method, hparams) from the row. So `ticket.filed` carries `ticket_row_sha256`, the sha256
of the canonical JSON of ROW_FIELDS as filed, and `grin audit verify` recomputes it from every row.

Chains filed before that field existed stay verifiable: the record's own fields (model_ref, method,
subject_sha256, request_sha256, requested_by, legal_basis, due_date, forget_uri_count) are compared,
and the row's request is hashed again as `TicketRequest.sha256` hashed it at filing (hparams has had
three shapes; LEGACY_HPARAM_SHAPES) against the record's request_sha256. That covers every request
field but the idempotency key, which no older record hashed.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from infra.audit import canonical_json, sha256_hex
from infra.db.models import AuditRecord, Ticket
from infra.ticket_request import TicketRequest

FILED = "ticket.filed"
ROW_SHA256 = "ticket_row_sha256"
# The fields of a ticket row that say what was asked; anything else on the row moves with the run.
ROW_FIELDS = (
    "subject",
    "model_name",
    "model_ref",
    "forget_uris",
    "retain_uris",
    "keywords_uri",
    "method",
    "hparams",
    "requested_by",
    "legal_basis",
    "due_date",
    "idempotency_key",
    "request_sha256",
)
# hparams keys added after tickets were first filed, newest first: an older request hashed without them.
LEGACY_HPARAM_SHAPES = ((), ("retain_batch_size",), ("retain_batch_size", "max_epochs"))


def row_fields(ticket: Ticket) -> dict[str, Any]:
    """ROW_FIELDS of `ticket` as JSON values."""
    return {
        "subject": ticket.subject,
        "model_name": ticket.model_name,
        "model_ref": ticket.model_ref,
        "forget_uris": list(ticket.forget_uris),
        "retain_uris": list(ticket.retain_uris) if ticket.retain_uris is not None else None,
        "keywords_uri": ticket.keywords_uri,
        "method": ticket.method.value,
        "hparams": dict(ticket.hparams or {}),
        "requested_by": ticket.requested_by,
        "legal_basis": ticket.legal_basis,
        "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
        "idempotency_key": ticket.idempotency_key,
        "request_sha256": ticket.request_sha256,
    }


def row_sha256(ticket: Ticket) -> str:
    return sha256_hex(canonical_json(row_fields(ticket)))


def _legacy_request_sha256s(ticket: Ticket) -> set[str] | None:
    """The request hashes the row's fields had under each shape the request has had; None when the row
    no longer makes a valid request."""
    try:
        request = TicketRequest.model_validate(
            {
                "subject": ticket.subject,
                "model": ticket.model_ref,
                "forget_uris": list(ticket.forget_uris),
                "retain_uris": list(ticket.retain_uris) if ticket.retain_uris else None,
                "keywords_uri": ticket.keywords_uri,
                "method": ticket.method.value,
                "hparams": ticket.hparams or {},
                "requested_by": ticket.requested_by,
                "legal_basis": ticket.legal_basis,
                "due_date": ticket.due_date,
            }
        )
    except ValidationError:
        return None
    dump = request.model_dump(mode="json", exclude={"idempotency_key"})
    hashes = set()
    for added in LEGACY_HPARAM_SHAPES:
        if all(dump["hparams"].get(k) is None for k in added):
            shaped = {**dump, "hparams": {k: v for k, v in dump["hparams"].items() if k not in added}}
            hashes.add(sha256_hex(canonical_json(shaped)))
    return hashes


def mismatch(ticket: Ticket, filed: dict[str, Any]) -> str | None:
    """What about `ticket`'s row differs from its `ticket.filed` payload, or None."""
    named = [
        ("subject", sha256_hex(ticket.subject), filed.get("subject_sha256")),
        ("model_ref", ticket.model_ref, filed.get("model_ref")),
        ("model_name", ticket.model_name, str(filed.get("model_ref", "")).split("@", 1)[0]),
        ("method", ticket.method.value, filed.get("method")),
        ("request_sha256", ticket.request_sha256, filed.get("request_sha256")),
        ("requested_by", ticket.requested_by, filed.get("requested_by")),
        ("legal_basis", ticket.legal_basis, filed.get("legal_basis")),
        ("due_date", ticket.due_date.isoformat() if ticket.due_date else None, filed.get("due_date")),
        ("forget_uris", len(ticket.forget_uris or []), filed.get("forget_uri_count")),
    ]
    for field, row, record in named:
        if row != record:
            return f"its {field} is not the one filed"
    if ROW_SHA256 in filed:
        if row_sha256(ticket) != filed[ROW_SHA256]:
            return "its request fields (forget/retain/keywords URIs, hparams or idempotency key) are not the ones filed"
        return None
    legacy = _legacy_request_sha256s(ticket)
    if legacy is None:
        return "its request fields no longer make a valid request"
    if filed.get("request_sha256") not in legacy:
        return "its request fields (forget/retain/keywords URIs or hparams) no longer hash to the request filed"
    return None


def check_ticket_rows(*, session: Session) -> tuple[int | None, str] | None:
    """(record id, reason) for the first ticket row whose request differs from its `ticket.filed`
    record, or None when every row holds what was filed."""
    rows = session.execute(
        select(Ticket, AuditRecord.id, AuditRecord.payload)
        .outerjoin(AuditRecord, and_(AuditRecord.ticket_id == Ticket.id, AuditRecord.kind == FILED))
        .order_by(Ticket.id, AuditRecord.id)
        .execution_options(yield_per=500)
    )
    for ticket, record_id, payload in rows:
        if record_id is None:
            return None, f"ticket {ticket.id} has no {FILED} record"
        reason = mismatch(ticket, payload)
        if reason:
            return record_id, f"ticket {ticket.id}: {reason} (its {FILED} record {record_id})"
    return None
