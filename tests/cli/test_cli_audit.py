from __future__ import annotations

from collections.abc import Callable

from infra.settings import Settings
from tests.cli.conftest import Grin
from tests.fixtures.services import edit_audit_records


def _file_one(grin: Grin) -> int:
    uri = f"{grin.settings.storage_url}/{grin.objects()[0]}"
    return grin.json(
        "ticket", "file", "--subject", "Jane Doe", "--model", "tofu", "--forget", uri,
        "--requested-by", "alice", "--legal-basis", "GDPR Art. 17",
    )["ticket_id"]  # fmt: skip


def test_verify_passes_on_an_untouched_chain(tofu: Grin) -> None:
    ticket_id = _file_one(tofu)
    check = tofu.json("audit", "verify")
    assert check["ok"] is True and check["records"] == 4 and check["broken_id"] is None
    assert "audit chain intact: 4 records" in tofu("audit", "verify").stdout
    log = tofu.json("audit", "log", "--ticket", str(ticket_id))
    assert [r["kind"] for r in log] == ["ticket.filed"]
    assert "Jane Doe" not in tofu("audit", "log").stdout  # payloads carry the subject's hash only


def test_verify_reports_an_edited_record_on_sqlite(tofu: Grin) -> None:
    _file_one(tofu)
    edit_audit_records(
        tofu.settings.database_url,
        'UPDATE audit_records SET payload = \'{"to": "completed"}\' WHERE id = 4',
    )
    result = tofu("audit", "verify", "--json")
    assert result.exit_code == 1
    assert '"broken_id": 4' in result.stdout and "hash mismatch" in result.stdout
    human = tofu("audit", "verify")
    assert human.exit_code == 1 and "BROKEN at record 4" in human.stderr


def test_verify_reports_an_edited_record_on_postgres(
    grin_for: Callable[[Settings], Grin], make_settings: Callable[..., Settings], fresh_pg_url: str
) -> None:
    grin = grin_for(make_settings(database_url=fresh_pg_url))
    grin.json("model", "register", "tofu")
    grin.json("model", "register", "llama")
    edit_audit_records(fresh_pg_url, "UPDATE audit_records SET kind = 'model.deleted' WHERE id = 2")
    result = grin("audit", "verify", "--json")
    assert result.exit_code == 1
    assert '"broken_id": 2' in result.stdout
