from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from itertools import pairwise

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from infra import audit, filing, queue
from infra.db.models import AuditRecord
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from tests.fixtures.services import edit_audit_records

Factory = sessionmaker[Session]


@pytest.fixture
def chain(db: Factory, model: str, make_request: Callable[..., TicketRequest]) -> Factory:
    """A chain of ~10 records: model registration, two tickets filed and moved along."""
    with db.begin() as session:
        for _ in range(2):
            ticket = filing.file_ticket(make_request(), session=session)
        queue.claim("w", 60, session=session)
        queue.transition(ticket.id - 1, TicketStatus.assembling, session=session)
        audit.append(
            "note",
            {"unicode": "Zoë ✓", "nested": {"b": [1, 2.5, None], "a": True}},
            session=session,
        )
    return db


def test_hash_is_sha256_of_canonical_json_of_the_stored_fields(chain: Factory) -> None:
    with chain.begin() as session:
        records = audit.records(session=session)
        assert [r.id for r in records] == list(range(1, len(records) + 1))
        assert records[0].prev_hash == "0" * 64
        for previous, record in pairwise(records):
            assert record.prev_hash == previous.hash
        # Recomputed here from the rule itself, not through infra.audit.
        for record in records:
            fields = {
                "id": record.id,
                "created_at": record.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "kind": record.kind,
                "ticket_id": record.ticket_id,
                "payload": record.payload,
                "prev_hash": record.prev_hash,
            }
            canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            assert record.hash == hashlib.sha256(canonical).hexdigest()
        check = audit.verify(session=session)
        assert (check.ok, check.records, check.head_hash) == (True, len(records), records[-1].hash)


@pytest.mark.parametrize(
    ("tamper", "broken", "reason"),
    [
        ("UPDATE audit_records SET kind = 'ticket.forged' WHERE id = 5", 5, "hash mismatch"),
        ("UPDATE audit_records SET ticket_id = 2 WHERE id = 6", 6, "hash mismatch"),
        ("DELETE FROM audit_records WHERE id = 4", 5, "missing record"),
        ("UPDATE audit_records SET prev_hash = '{h}' WHERE id = 7", 7, "broken link"),
    ],
)
def test_verify_names_the_first_record_that_does_not_hold(
    chain: Factory, db_url: str, tamper: str, broken: int, reason: str
) -> None:
    edit_audit_records(db_url, tamper.format(h="f" * 64))
    with chain.begin() as session:
        check = audit.verify(session=session)
    assert (check.ok, check.broken_id) == (False, broken)
    assert check.reason.startswith(reason)


def test_a_rewritten_record_with_a_recomputed_hash_breaks_the_next_link(chain: Factory, db_url: str) -> None:
    with chain.begin() as session:
        record = session.get(AuditRecord, 3)
        forged_payload = {**record.payload, "reason": "forged"}
        forged_hash = audit.record_hash(
            id=3,
            created_at=record.created_at,
            kind=record.kind,
            ticket_id=record.ticket_id,
            payload=forged_payload,
            prev_hash=record.prev_hash,
        )
    payload_sql = json.dumps(forged_payload).replace("'", "''")
    edit_audit_records(
        db_url,
        f"UPDATE audit_records SET payload = '{payload_sql}', hash = '{forged_hash}' WHERE id = 3",
    )
    with chain.begin() as session:
        check = audit.verify(session=session)
    assert (check.ok, check.broken_id) == (False, 4)
    assert check.reason.startswith("broken link")


def test_a_fork_of_the_chain_is_refused(chain: Factory) -> None:
    with pytest.raises(IntegrityError), chain.begin() as session:
        head = audit.records(session=session)[-1]
        session.add(
            AuditRecord(
                id=head.id + 100,
                created_at=head.created_at,
                kind="fork",
                ticket_id=None,
                payload={},
                prev_hash=head.prev_hash,  # a second successor of the same record
                hash="e" * 64,
            )
        )


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_records SET kind = 'x'", "DELETE FROM audit_records", "TRUNCATE audit_records"],
)
def test_postgres_refuses_update_delete_and_truncate(fresh_pg_url: str, statement: str) -> None:
    engine = create_engine(fresh_pg_url, poolclass=pool.NullPool)
    with sessionmaker(engine).begin() as session:
        audit.append("note", {"n": 1}, session=session)
    with (
        pytest.raises(DBAPIError, match="audit_records is append-only"),
        engine.begin() as connection,
    ):
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM audit_records WHERE kind = 'note'")) == 1
    engine.dispose()


def test_payloads_that_json_cannot_carry_faithfully_are_refused(db: Factory) -> None:
    with pytest.raises(ValueError), db.begin() as session:
        audit.append("metric", {"loss": float("nan")}, session=session)
