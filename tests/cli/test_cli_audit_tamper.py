"""Tampering with the audit trail behind the service's back is caught by `grin audit verify
--expect-head` (a head pinned in a file, by hash, or published to the store) or refused outright.

Every edit runs as the tables' owner with the append-only trigger lifted (`edit_audit_records`):
the attacker with database access.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from infra.audit import record_hash
from infra.db.models import AuditRecord
from infra.db.session import make_engine, make_sessionmaker
from infra.settings import Settings
from tests.cli.conftest import Grin
from tests.fixtures.services import edit_audit_records


def _file_one(grin: Grin) -> int:
    uri = f"{grin.settings.storage_url}/inbox/jane.json"
    return grin.json(
        "ticket", "file", "--subject", "Jane Doe", "--model", "tofu", "--forget", uri,
        "--requested-by", "alice", "--legal-basis", "GDPR Art. 17",
    )["ticket_id"]  # fmt: skip


def _pin(grin: Grin, tmp_path: Path) -> tuple[Path, dict]:
    head = grin.json("audit", "head", "--publish")
    path = tmp_path / "head.json"
    path.write_text(json.dumps(head))
    return path, head


def _broken(grin: Grin, *args: str) -> str:
    result = grin("audit", "verify", *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1
    return result.stderr


def _rewrite_from(url: str, first_id: int, payload: dict) -> None:
    """Edit record `first_id` and recompute every later hash, as an attacker who knows the rule would."""
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        records = session.query(AuditRecord).order_by(AuditRecord.id).all()
        rows = [(r.id, r.created_at, r.kind, r.ticket_id, dict(r.payload), r.prev_hash) for r in records]
    engine.dispose()
    statements, prev = [], None
    for record_id, created_at, kind, ticket_id, old_payload, prev_hash in rows:
        if record_id < first_id:
            prev = None
            continue
        new_payload = payload if record_id == first_id else old_payload
        prev_hash = prev or prev_hash
        new_hash = record_hash(
            id=record_id,
            created_at=created_at,
            kind=kind,
            ticket_id=ticket_id,
            payload=new_payload,
            prev_hash=prev_hash,
        )
        body = json.dumps(new_payload).replace("'", "''")
        statements.append(
            f"UPDATE audit_records SET payload = '{body}', prev_hash = '{prev_hash}', "
            f"hash = '{new_hash}' WHERE id = {record_id}"
        )
        prev = new_hash
    edit_audit_records(url, *statements)


def test_head_is_id_hash_count_and_time_and_is_published_once_per_head(tofu: Grin) -> None:
    _file_one(tofu)
    head = tofu.json("audit", "head", "--publish")
    assert set(head) == {"id", "hash", "count", "time", "published"}
    assert (head["id"], head["count"]) == (4, 4) and len(head["hash"]) == 64
    assert head["published"].endswith(f"audit/heads/{4:012d}-{head['hash']}.json")
    assert tofu.json("audit", "verify", "--expect-head", head["hash"])["ok"] is True
    assert tofu.json("audit", "verify", "--expect-head", "store")["ok"] is True


@pytest.mark.parametrize("pin", ["file", "hash", "store"])
def test_tail_truncation_is_caught_by_a_pinned_head(tofu: Grin, tmp_path: Path, pin: str) -> None:
    _file_one(tofu)
    path, head = _pin(tofu, tmp_path)
    edit_audit_records(tofu.settings.database_url, "DELETE FROM audit_records WHERE id = 4")
    assert tofu("audit", "verify").exit_code == 1  # the ticket's row lost its audit record
    expect = {"file": str(path), "hash": head["hash"], "store": "store"}[pin]
    assert "truncated" in _broken(tofu, "--expect-head", expect)


def test_deleting_every_record_is_caught(tofu: Grin, tmp_path: Path) -> None:
    path, _ = _pin(tofu, tmp_path)
    edit_audit_records(tofu.settings.database_url, "DELETE FROM audit_records")
    assert "truncated: the pinned head" in _broken(tofu, "--expect-head", str(path))


def test_a_rewrite_with_recomputed_hashes_is_caught_only_by_the_pinned_head(tofu: Grin, tmp_path: Path) -> None:
    _file_one(tofu)
    path, _ = _pin(tofu, tmp_path)
    _rewrite_from(tofu.settings.database_url, 2, {"model": "tofu", "note": "rewritten"})
    assert tofu.json("audit", "verify")["ok"] is True  # a consistent other chain
    assert "rewritten: the record at the pinned head has another hash" in _broken(tofu, "--expect-head", str(path))
    assert "rewritten" in _broken(tofu, "--expect-head", "store")


def test_truncating_then_appending_anew_is_caught(tofu: Grin, tmp_path: Path) -> None:
    _file_one(tofu)
    path, _ = _pin(tofu, tmp_path)
    edit_audit_records(tofu.settings.database_url, "DELETE FROM audit_records WHERE id = 4", "DELETE FROM tickets")
    tofu.json("model", "register", "other")  # new records grow the chain past the pinned count
    assert "rewritten" in _broken(tofu, "--expect-head", str(path))


def test_a_ticket_row_that_disagrees_with_its_audit_trail_is_caught(tofu: Grin) -> None:
    ticket_id = _file_one(tofu)
    edit_audit_records(tofu.settings.database_url, f"UPDATE tickets SET status = 'completed' WHERE id = {ticket_id}")
    assert f"ticket {ticket_id} is completed but its audit trail last moved it to queued" in _broken(tofu)
    edit_audit_records(tofu.settings.database_url, f"DELETE FROM tickets WHERE id = {ticket_id}")
    assert f"ticket {ticket_id} is in the audit trail but has no row" in _broken(tofu)


def test_a_bad_pin_is_one_line(tofu: Grin, tmp_path: Path) -> None:
    missing = tofu("audit", "verify", "--expect-head", str(tmp_path / "nope.json"))
    assert missing.exit_code == 1 and "No such file" in missing.stderr
    (tmp_path / "junk.json").write_text("[]")
    junk = tofu("audit", "verify", "--expect-head", str(tmp_path / "junk.json"))
    assert junk.exit_code == 1 and "not a head file" in junk.stderr
    none = tofu("audit", "verify", "--expect-head", "store")
    assert none.exit_code == 1 and "no audit head has been published" in none.stderr


@pytest.fixture
def pg_grin(
    grin_for: Callable[[Settings], Grin],
    make_settings: Callable[..., Settings],
    fresh_pg_url: str,
    s3_storage_fields: dict[str, object],
) -> Grin:
    grin = grin_for(make_settings(database_url=fresh_pg_url, **s3_storage_fields))
    grin.json("model", "register", "tofu")
    grin.json("model", "register", "llama")
    return grin


def test_downgrade_to_base_is_refused_without_the_flag_and_caught_with_it(pg_grin: Grin, tmp_path: Path) -> None:
    path, _ = _pin(pg_grin, tmp_path)
    refused = pg_grin("db", "downgrade", "base")
    assert refused.exit_code == 1 and "drops the audit trail" in refused.stderr
    assert pg_grin.json("audit", "verify")["records"] == 2
    assert pg_grin("db", "downgrade", "--", "-1").exit_code == 0  # a step that keeps the audit table
    assert pg_grin("db", "upgrade").exit_code == 0

    assert pg_grin("db", "downgrade", "base", "--drop-audit-data").exit_code == 0
    assert pg_grin("db", "upgrade").exit_code == 0
    assert pg_grin.json("audit", "verify")["records"] == 0  # an empty chain is "intact" alone
    assert "truncated" in _broken(pg_grin, "--expect-head", str(path))
    assert "truncated" in _broken(pg_grin, "--expect-head", "store")  # the downgrade's own head


def test_trigger_disabled_by_the_owner_then_truncated_is_caught(pg_grin: Grin, tmp_path: Path) -> None:
    path, _ = _pin(pg_grin, tmp_path)
    edit_audit_records(pg_grin.settings.database_url, "DELETE FROM audit_records WHERE id = 2")
    assert pg_grin.json("audit", "verify")["ok"] is True
    assert "truncated" in _broken(pg_grin, "--expect-head", str(path))


@pytest.fixture
def app_role_url(fresh_pg_url: str) -> Iterator[str]:
    """The database as an application role that does not own the tables (as docker-compose runs it)."""
    role = f"grin_app_{uuid.uuid4().hex[:8]}"
    admin = create_engine(fresh_pg_url, poolclass=pool.NullPool)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
    yield make_url(fresh_pg_url).set(username=role).render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.execute(text(f"DROP OWNED BY {role}"))
        connection.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only",
        "DELETE FROM audit_records",
        "UPDATE audit_records SET kind = 'x'",
        "TRUNCATE audit_records",
        "DROP TABLE audit_records",
    ],
)
def test_an_application_role_that_does_not_own_the_table_is_refused(
    pg_grin: Grin, app_role_url: str, statement: str
) -> None:
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(app_role_url, poolclass=pool.NullPool)
    try:
        with pytest.raises(DBAPIError, match="must be owner|append-only|permission denied"), engine.begin() as c:
            c.execute(text(statement))
    finally:
        engine.dispose()
    assert pg_grin.json("audit", "verify")["records"] == 2
