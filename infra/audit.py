"""The append-only, hash-chained audit trail.

Each record's hash covers every stored field but the hash itself, `prev_hash` included, so an
edit anywhere breaks that record's hash and a deleted record breaks the link after it.
Appends are serialised (a PostgreSQL advisory lock; SQLite has one writer at a time) and the
UNIQUE `prev_hash` refuses a fork should two appenders ever race past that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db.base import utcnow
from infra.db.models import AuditRecord, Ticket

GENESIS_HASH = "0" * 64
# Arbitrary constant naming "the audit chain" among PostgreSQL advisory locks.
_ADVISORY_LOCK_KEY = 0x6772696E_61756474  # "grin" "audt"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string per value, whichever database stored it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(
    *,
    id: int,
    created_at: datetime,
    kind: str,
    ticket_id: int | None,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The hash a record with these stored fields must carry."""
    fields = {
        "id": id,
        "created_at": _timestamp(created_at),
        "kind": kind,
        "ticket_id": ticket_id,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return sha256_hex(canonical_json(fields))


def as_dict(record: AuditRecord) -> dict[str, Any]:
    """A stored record as `grin audit log --json` prints it and `audit/records/<id>.json` holds it."""
    return {
        "id": record.id,
        "created_at": record.created_at.isoformat(),
        "kind": record.kind,
        "ticket_id": record.ticket_id,
        "payload": record.payload,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def append(kind: str, payload: Mapping[str, Any], *, session: Session, ticket_id: int | None = None) -> AuditRecord:
    """Add one record at the head of the chain, inside the caller's transaction.

    Call it after the row locks the same transaction needs: the chain lock is held to commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
    head = session.execute(select(AuditRecord.id, AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1)).first()
    record_id, prev_hash = (head.id + 1, head.hash) if head else (1, GENESIS_HASH)
    # Stored as it would be read back, so the hash computed now is the one verify recomputes.
    stored_payload = json.loads(canonical_json(dict(payload)))
    created_at = utcnow()
    record = AuditRecord(
        id=record_id,
        created_at=created_at,
        kind=kind,
        ticket_id=ticket_id,
        payload=stored_payload,
        prev_hash=prev_hash,
        hash=record_hash(
            id=record_id,
            created_at=created_at,
            kind=kind,
            ticket_id=ticket_id,
            payload=stored_payload,
            prev_hash=prev_hash,
        ),
    )
    session.add(record)
    session.flush()
    return record


@dataclass(frozen=True)
class ChainHead:
    """The newest record of the chain, to pin elsewhere: a later `verify(expect=...)` catches a
    truncation (the pinned record is gone) or a rewrite (it has another hash) since then."""

    id: int | None
    hash: str
    count: int
    time: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainHead:
        return cls(id=data.get("id"), hash=str(data["hash"]), count=int(data.get("count") or 0), time=data.get("time"))


def head(*, session: Session) -> ChainHead:
    row = session.execute(
        select(AuditRecord.id, AuditRecord.hash, AuditRecord.created_at).order_by(AuditRecord.id.desc()).limit(1)
    ).first()
    count = session.scalar(select(func.count()).select_from(AuditRecord)) or 0
    if row is None:
        return ChainHead(None, GENESIS_HASH, 0, None)
    return ChainHead(row.id, row.hash, count, _timestamp(row.created_at))


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of `verify`: `broken_id` and `reason` name the first bad record, if any."""

    ok: bool
    records: int
    head_hash: str
    broken_id: int | None = None
    reason: str | None = None
    tickets_checked: int = 0


_STATUS_KINDS = ("ticket.filed", "ticket.transition")


def verify(*, session: Session, expect: ChainHead | Sequence[ChainHead] | None = None) -> ChainCheck:
    """Walk the chain from its start and report the first record that does not hold.

    A record can fail three ways: its id is not the one after its predecessor (`missing
    record`: rows were deleted), its prev_hash is not its predecessor's hash (`broken link`),
    or its hash is not the hash of its own fields (`hash mismatch`: it was edited).
    Deleting the newest records leaves a valid shorter chain, and a rewrite that recomputes
    every later hash leaves a valid other chain: `expect`, a head pinned earlier (`head`, or
    one published to the store; or all of them, a sequence), catches both. Then every ticket
    row's status must be the one its audit records last moved it to, every ticket in the chain
    must still have its row, and every row must hold the request its `ticket.filed` record
    describes (`infra.ticket_rows`).
    """
    checked = _walk(session, expect)
    if not checked.ok:
        return checked
    checked = _check_tickets(session, checked)
    if not checked.ok:
        return checked
    from infra.ticket_rows import check_ticket_rows  # it imports this module

    broken = check_ticket_rows(session=session)
    return _ticket_broken(checked, *broken) if broken else checked


def _walk(session: Session, expect: ChainHead | Sequence[ChainHead] | None) -> ChainCheck:
    """Every record in id order against its predecessor and its own fields, then the pinned heads."""
    expected_id, expected_prev, count = 1, GENESIS_HASH, 0
    pins = [] if expect is None else [expect] if isinstance(expect, ChainHead) else list(expect)
    by_id: dict[int | None, list[ChainHead]] = {}
    for pin in pins:
        by_id.setdefault(pin.id, []).append(pin)  # a pin by hash alone waits under None
    seen: set[int] = set()  # id() of every pin found in the chain
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.id).execution_options(yield_per=1000))
    for record in rows.scalars():
        count += 1
        fault = _record_fault(record, expected_id, expected_prev) or _pin_fault(record, by_id, seen)
        if fault is not None:
            return ChainCheck(False, count, expected_prev, record.id, fault)
        expected_id, expected_prev = record.id + 1, record.hash
    truncated = _truncation(pins, seen, count)
    if truncated is not None:
        return ChainCheck(False, count, expected_prev, *truncated)
    return ChainCheck(True, count, expected_prev)


def _record_fault(record: AuditRecord, expected_id: int, expected_prev: str) -> str | None:
    """Why a record does not follow its predecessor or does not hash to itself; None when it holds."""
    if record.id != expected_id:
        return f"missing record: expected id {expected_id}"
    if record.prev_hash != expected_prev:
        return "broken link: prev_hash is not the previous hash"
    recomputed = record_hash(
        id=record.id,
        created_at=record.created_at,
        kind=record.kind,
        ticket_id=record.ticket_id,
        payload=record.payload,
        prev_hash=record.prev_hash,
    )
    if recomputed != record.hash:
        return "hash mismatch: the record was altered"
    return None


def _pin_fault(record: AuditRecord, by_id: Mapping[int | None, list[ChainHead]], seen: set[int]) -> str | None:
    """A pin at this record's id with another hash is a rewrite; every pin this record matches goes into `seen`."""
    for pin in by_id.get(record.id, ()):
        if record.hash != pin.hash:
            return "rewritten: the record at the pinned head has another hash"
        seen.add(id(pin))
    for pin in by_id.get(None, ()):
        if record.hash == pin.hash:
            seen.add(id(pin))
    return None


def _truncation(pins: list[ChainHead], seen: set[int], count: int) -> tuple[int | None, str] | None:
    """(the pin's id, why) for the first pin, fewest records first, that the walked chain lost; None if none."""
    for pin in sorted(pins, key=lambda p: p.count):
        if pin.hash != GENESIS_HASH and id(pin) not in seen:
            pinned = f"record {pin.id}, {pin.count} records" if pin.id else f"hash {pin.hash[:16]}"
            return pin.id, f"truncated: the pinned head ({pinned}) is gone; the chain holds {count}"
        if count < pin.count:
            return pin.id, f"truncated: {count} records, fewer than the {pin.count} pinned"
    return None


def _check_tickets(session: Session, chain: ChainCheck) -> ChainCheck:
    last: dict[int, tuple[int, str]] = {}
    rows = session.execute(
        select(AuditRecord.id, AuditRecord.ticket_id, AuditRecord.payload)
        .where(AuditRecord.kind.in_(_STATUS_KINDS))
        .order_by(AuditRecord.id)
        .execution_options(yield_per=1000)
    )
    for record_id, ticket_id, payload in rows:
        if ticket_id is not None:
            last[ticket_id] = (record_id, str(payload.get("to")))
    statuses = {row.id: row.status for row in session.execute(select(Ticket.id, Ticket.status))}
    for ticket_id, status in sorted(statuses.items()):
        if ticket_id not in last:
            return _ticket_broken(chain, None, f"ticket {ticket_id} has no audit record")
        record_id, audited = last[ticket_id]
        if status.value != audited:
            return _ticket_broken(
                chain,
                record_id,
                f"ticket {ticket_id} is {status.value} but its audit trail last moved it to {audited}",
            )
    gone = sorted(set(last) - set(statuses))
    if gone:
        return _ticket_broken(chain, last[gone[0]][0], f"ticket {gone[0]} is in the audit trail but has no row")
    return ChainCheck(True, chain.records, chain.head_hash, tickets_checked=len(statuses))


def _ticket_broken(chain: ChainCheck, record_id: int | None, reason: str) -> ChainCheck:
    return ChainCheck(False, chain.records, chain.head_hash, record_id, reason)


def records(*, session: Session, ticket_id: int | None = None, limit: int | None = None) -> list[AuditRecord]:
    """Records in chain order, optionally only those about one ticket."""
    query = select(AuditRecord).order_by(AuditRecord.id)
    if ticket_id is not None:
        query = query.where(AuditRecord.ticket_id == ticket_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
