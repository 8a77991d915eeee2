"""Issue 25: the audit chain covers what a ticket asked for, and every head the service published.

- A ticket row edited behind the service's back (subject, forget URIs, model, method, hparams, the
  request hash, ...) no longer matches its `ticket.filed` record: `grin audit verify` fails in every
  mode. Chains filed before `ticket_row_sha256` existed are checked through their request hash.
- `--expect-head store` holds the chain to every published head, so a head published after a
  rewrite does not hide it; the service publishes no head over a chain that lost the newest one;
  anything else under audit/heads/ is one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from infra import audit
from infra.audit_heads import PREFIX, publish_head
from infra.db.models import AuditRecord, Ticket
from infra.db.session import make_engine, make_sessionmaker
from infra.settings import Settings
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from tests.cli.conftest import Grin
from tests.cli.test_cli_audit_tamper import _broken, _pin, _rewrite_from
from tests.fixtures.services import edit_audit_records


def _file(grin: Grin, *extra: str) -> int:
    store = open_store(grin.settings)
    retain = store.put_bytes("inbox/retain.json", b'[{"question": "r", "answer": "s"}]').uri
    keywords = store.put_bytes("inbox/kw.json", b'["Jane"]').uri
    return grin.json(
        "ticket", "file", "--subject", "Jane Doe", "--model", "tofu", "--forget",
        f"{grin.settings.storage_url}/inbox/jane.json", "--retain", retain, "--keywords", keywords,
        "--hparam", "p_percent=0.5", "--hparam", "learning_rate=1e-5", "--hparam", "seed=3",
        "--requested-by", "alice", "--legal-basis", "GDPR Art. 17", "--due-date", "2099-01-31",
        "--idempotency-key", "case-17", *extra,
    )["ticket_id"]  # fmt: skip


def _filed(settings: Settings, ticket_id: int) -> AuditRecord:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            record = session.scalar(
                select(AuditRecord).where(AuditRecord.ticket_id == ticket_id, AuditRecord.kind == "ticket.filed")
            )
            session.expunge(record)
            return record
    finally:
        engine.dispose()


# (field, SQL SET clause): one request field of the row changed after filing
ROW_EDITS = [
    ("subject", "subject = 'John Roe'", "its subject is not the one filed"),
    ("forget_uris", "forget_uris = '[\"file:///etc/passwd\"]'", "its request fields (forget/retain/keywords URIs"),
    (
        "forget_uris, one more",
        'forget_uris = \'["{inbox}/jane.json", "{inbox}/other.json"]\'',
        "its forget_uris is not the one filed",
    ),
    ("retain_uris", "retain_uris = NULL", "its request fields"),
    ("keywords_uri", "keywords_uri = NULL", "its request fields"),
    ("model_ref", "model_ref = 'tofu@1'", "its model_ref is not the one filed"),
    ("model_name", "model_name = 'other'", "its model_name is not the one filed"),
    ("method", "method = 'graddiff'", "its method is not the one filed"),
    ("hparams", 'hparams = \'{"p_percent": 5.0, "learning_rate": 1e-05, "seed": 3}\'', "its request fields"),
    ("request_sha256", f"request_sha256 = '{'f' * 64}'", "its request_sha256 is not the one filed"),
    ("requested_by", "requested_by = 'mallory'", "its requested_by is not the one filed"),
    ("legal_basis", "legal_basis = 'none'", "its legal_basis is not the one filed"),
    ("due_date", "due_date = '2100-01-01'", "its due_date is not the one filed"),
    ("idempotency_key", "idempotency_key = 'case-18'", "its request fields"),
]


@pytest.mark.parametrize(("field", "assignment", "message"), ROW_EDITS, ids=[e[0] for e in ROW_EDITS])
def test_a_ticket_row_edited_after_filing_is_caught_in_every_verify_mode(
    tofu: Grin, tmp_path: Path, field: str, assignment: str, message: str
) -> None:
    tofu.json("model", "register", "other")
    ticket_id = _file(tofu)
    path, head = _pin(tofu, tmp_path)
    assert tofu.json("audit", "verify", "--expect-head", "store")["ok"] is True
    inbox = f"{tofu.settings.storage_url}/inbox"
    edit_audit_records(
        tofu.settings.database_url, f"UPDATE tickets SET {assignment.replace('{inbox}', inbox)} WHERE id = {ticket_id}"
    )
    record = _filed(tofu.settings, ticket_id).id
    for mode in ([], ["--expect-head", str(path)], ["--expect-head", head["hash"]], ["--expect-head", "store"]):
        reason = _broken(tofu, *mode)
        assert f"at record {record}: ticket {ticket_id}: {message}" in reason, (mode, reason)


def test_a_row_and_its_filed_record_rewritten_together_are_caught_by_a_pinned_head(tofu: Grin, tmp_path: Path) -> None:
    """The attacker who also rewrites the chain (new row hash, every later hash recomputed) leaves a
    consistent other chain: only a head pinned or published before catches it."""
    ticket_id = _file(tofu)
    path, _ = _pin(tofu, tmp_path)
    edit_audit_records(
        tofu.settings.database_url,
        f"UPDATE tickets SET forget_uris = '[\"file:///etc/passwd\"]' WHERE id = {ticket_id}",
    )
    filed = _filed(tofu.settings, ticket_id)
    engine = make_engine(tofu.settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        from infra.ticket_rows import row_sha256

        forged = {**filed.payload, "ticket_row_sha256": row_sha256(session.get(Ticket, ticket_id))}
    engine.dispose()
    _rewrite_from(tofu.settings.database_url, filed.id, forged)
    assert tofu.json("audit", "verify")["ok"] is True
    assert "rewritten" in _broken(tofu, "--expect-head", str(path))
    assert "rewritten" in _broken(tofu, "--expect-head", "store")


def _legacy(tofu: Grin, ticket_id: int, *, old_shape: bool = False) -> None:
    """Make the ticket's filed record one written before `ticket_row_sha256`; with `old_shape`, its
    request hash the one the oldest TicketRequest (no max_epochs, no retain_batch_size) gave."""
    from infra.audit import canonical_json, sha256_hex

    filed = _filed(tofu.settings, ticket_id)
    payload = {k: v for k, v in filed.payload.items() if k != "ticket_row_sha256"}
    if old_shape:
        engine = make_engine(tofu.settings.database_url)
        with make_sessionmaker(engine).begin() as session:
            t = session.get(Ticket, ticket_id)
            dump = TicketRequest.model_validate(
                {
                    "subject": t.subject,
                    "model": t.model_ref,
                    "forget_uris": t.forget_uris,
                    "retain_uris": t.retain_uris,
                    "keywords_uri": t.keywords_uri,
                    "method": t.method.value,
                    "hparams": t.hparams,
                    "requested_by": t.requested_by,
                    "legal_basis": t.legal_basis,
                    "due_date": t.due_date,
                }
            ).model_dump(mode="json", exclude={"idempotency_key"})
        engine.dispose()
        for added in ("max_epochs", "retain_batch_size"):
            dump["hparams"].pop(added)
        payload["request_sha256"] = sha256_hex(canonical_json(dump))
        edit_audit_records(
            tofu.settings.database_url,
            f"UPDATE tickets SET request_sha256 = '{payload['request_sha256']}' WHERE id = {ticket_id}",
        )
    _rewrite_from(tofu.settings.database_url, filed.id, payload)


@pytest.mark.parametrize("old_shape", [False, True], ids=["current request shape", "oldest request shape"])
def test_a_chain_filed_before_row_hashes_still_verifies_and_still_catches_an_edited_row(
    tofu: Grin, old_shape: bool
) -> None:
    ticket_id = _file(tofu)
    _legacy(tofu, ticket_id, old_shape=old_shape)
    assert tofu.json("audit", "verify")["ok"] is True
    edit_audit_records(
        tofu.settings.database_url, f"UPDATE tickets SET hparams = '{{\"p_percent\": 5.0}}' WHERE id = {ticket_id}"
    )
    assert "no longer hash to the request filed" in _broken(tofu)


def _old_service_publishes(settings: Settings) -> None:
    """What main did after every ticket: publish the current head, whatever the store held."""
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        head = audit.head(session=session)
    engine.dispose()
    publish_head(head, store=open_store(settings))


def test_a_rewrite_followed_by_a_newer_published_head_is_still_caught_by_the_store(tofu: Grin) -> None:
    _file(tofu)
    tofu.json("audit", "head", "--publish")
    _rewrite_from(tofu.settings.database_url, 2, {"model": "tofu", "note": "rewritten"})
    tofu.json("model", "register", "other")  # the chain grows past the published head
    _old_service_publishes(tofu.settings)
    assert len(open_store(tofu.settings).list(PREFIX)) == 2
    assert "rewritten: the record at the pinned head has another hash" in _broken(tofu, "--expect-head", "store")


def test_a_truncation_followed_by_a_newer_published_head_is_still_caught_by_the_store(tofu: Grin) -> None:
    ticket_id = _file(tofu)
    tofu.json("audit", "head", "--publish")
    edit_audit_records(
        tofu.settings.database_url,
        f"DELETE FROM audit_records WHERE ticket_id = {ticket_id}",
        f"DELETE FROM tickets WHERE id = {ticket_id}",
    )
    tofu.json("model", "register", "other")
    tofu.json("model", "register", "third")
    _old_service_publishes(tofu.settings)
    assert "rewritten" in _broken(tofu, "--expect-head", "store")


@pytest.mark.parametrize("tamper", ["rewrite", "truncate"])
def test_no_head_is_published_over_a_chain_that_lost_the_newest_published_one(tofu: Grin, tamper: str) -> None:
    _file(tofu)
    tofu.json("audit", "head", "--publish")
    if tamper == "rewrite":
        _rewrite_from(tofu.settings.database_url, 2, {"model": "tofu", "note": "rewritten"})
    else:
        edit_audit_records(tofu.settings.database_url, "DELETE FROM audit_records WHERE id >= 3", "DELETE FROM tickets")
    tofu.json("model", "register", "other")
    heads = open_store(tofu.settings).list(PREFIX)
    result = tofu("audit", "head", "--publish")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "not publishing the chain head: record 4 of the newest published head" in result.stderr
    assert open_store(tofu.settings).list(PREFIX) == heads


GARBAGE: list[tuple[str, Callable[[dict], tuple[str, bytes]]]] = [
    ("a name that is not a head's", lambda head: (f"{PREFIX}garbage.json", b"not json")),
    (
        "a head's name over bytes that are not JSON",
        lambda head: (f"{PREFIX}{head['count']:012d}-{'a' * 64}.json", b"\x00\xff not json"),
    ),
    (
        "a head's name over JSON that is not a head",
        lambda head: (f"{PREFIX}{head['count']:012d}-{'a' * 64}.json", b"[]"),
    ),
    (
        "a body that disagrees with its name",
        lambda head: (
            f"{PREFIX}{head['count']:012d}-{'a' * 64}.json",
            json.dumps({"id": head["id"], "hash": head["hash"], "count": head["count"]}).encode(),
        ),
    ),
]


@pytest.mark.parametrize(("name", "make"), GARBAGE, ids=[g[0] for g in GARBAGE])
def test_garbage_under_audit_heads_is_one_line_naming_it(tofu: Grin, name: str, make) -> None:
    head = tofu.json("audit", "head", "--publish")
    key, body = make(head)
    open_store(tofu.settings).put_bytes(key, body)
    for args in (("audit", "verify", "--expect-head", "store"), ("audit", "head", "--publish")):
        result = tofu(*args)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {key} ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_row_hashes_verify_on_postgresql_and_s3(
    grin_for: Callable[[Settings], Grin],
    make_settings: Callable[..., Settings],
    fresh_pg_url: str,
    s3_storage_fields: dict[str, object],
) -> None:
    """JSON columns round-trip through PostgreSQL's types: the row hash recomputed from them matches."""
    from tests.fixtures.checkpoints import store_checkpoint

    grin = grin_for(make_settings(database_url=fresh_pg_url, **s3_storage_fields))
    store = open_store(grin.settings)
    uri, sha256 = store_checkpoint(store, "published/tofu/v1")
    grin.json("model", "register", "tofu", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    store.put_bytes("inbox/jane.json", b'[{"question": "q", "answer": "a"}]')
    ticket_id = _file(grin)
    assert grin.json("audit", "verify")["ok"] is True
    edit_audit_records(
        grin.settings.database_url,
        f'UPDATE tickets SET hparams = \'{{"p_percent": 0.5, "seed": 4}}\' WHERE id = {ticket_id}',
    )
    assert f"ticket {ticket_id}: its request fields" in _broken(grin)
