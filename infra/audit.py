"""The append-only, hash-chained audit trail.

Each record's hash covers every stored field but the hash itself, `prev_hash` included, so an
edit anywhere breaks that record's hash and a deleted record breaks the link after it.
Appends are serialised (a PostgreSQL advisory lock; SQLite has one writer at a time) and the
UNIQUE `prev_hash` refuses a fork should two appenders ever race past that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db.base import utcnow
from infra.db.models import AuditRecord

GENESIS_HASH = "0" * 64
# Arbitrary constant naming "the audit chain" among PostgreSQL advisory locks.
_ADVISORY_LOCK_KEY = 0x6772696E_61756474  # "grin" "audt"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string per value, whichever database stored it."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


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


def append(
    kind: str, payload: Mapping[str, Any], *, session: Session, ticket_id: int | None = None
) -> AuditRecord:
    """Add one record at the head of the chain, inside the caller's transaction.

    Call it after the row locks the same transaction needs: the chain lock is held to commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
    head = session.execute(
        select(AuditRecord.id, AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1)
    ).first()
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
class ChainCheck:
    """The outcome of `verify`: `broken_id` and `reason` name the first bad record, if any."""

    ok: bool
    records: int
    head_hash: str
    broken_id: int | None = None
    reason: str | None = None


def verify(*, session: Session) -> ChainCheck:
    """Walk the chain from its start and report the first record that does not hold.

    A record can fail three ways: its id is not the one after its predecessor (`missing
    record`: rows were deleted), its prev_hash is not its predecessor's hash (`broken link`),
    or its hash is not the hash of its own fields (`hash mismatch`: it was edited).
    Deleting the newest records leaves a valid shorter chain; compare `head_hash` with one
    kept elsewhere (a flow artifact) to catch that.
    """
    expected_id, expected_prev, count = 1, GENESIS_HASH, 0
    rows = session.execute(
        select(AuditRecord).order_by(AuditRecord.id).execution_options(yield_per=1000)
    )
    for record in rows.scalars():
        count += 1
        if record.id != expected_id:
            return ChainCheck(
                False, count, expected_prev, record.id, f"missing record: expected id {expected_id}"
            )
        if record.prev_hash != expected_prev:
            return ChainCheck(
                False,
                count,
                expected_prev,
                record.id,
                "broken link: prev_hash is not the previous hash",
            )
        recomputed = record_hash(
            id=record.id,
            created_at=record.created_at,
            kind=record.kind,
            ticket_id=record.ticket_id,
            payload=record.payload,
            prev_hash=record.prev_hash,
        )
        if recomputed != record.hash:
            return ChainCheck(
                False, count, expected_prev, record.id, "hash mismatch: the record was altered"
            )
        expected_id, expected_prev = record.id + 1, record.hash
    return ChainCheck(True, count, expected_prev)


def records(
    *, session: Session, ticket_id: int | None = None, limit: int | None = None
) -> list[AuditRecord]:
    """Records in chain order, optionally only those about one ticket."""
    query = select(AuditRecord).order_by(AuditRecord.id)
    if ticket_id is not None:
        query = query.where(AuditRecord.ticket_id == ticket_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
