from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.storage import LocalStore, S3Store, open_store, s3_client
from tests.cli.conftest import Grin
from tests.fixtures.checkpoints import store_checkpoint


def _file_args(grin: Grin, *extra: str) -> list[str]:
    forget = grin.objects()[0]
    return [
        "ticket", "file",
        "--subject", "Jane Doe",
        "--model", "tofu",
        "--forget", f"{grin.settings.storage_url}/{forget}",
        "--requested-by", "alice",
        "--legal-basis", "GDPR Art. 17",
        *extra,
    ]  # fmt: skip


def test_model_register_and_list(grin: Grin) -> None:
    registered = grin.json("model", "register", "tofu", "--gate-policy", '{"max_rounds": 2}', "--description", "TOFU")
    assert registered["versions"] == [] and registered["gate_policy"] == {"max_rounds": 2}
    uri, sha256 = store_checkpoint(LocalStore(grin.settings.state_dir / "published"), "llama/v1")
    grin.json("model", "register", "llama", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    listed = {m["name"]: m for m in grin.json("model", "list")}
    assert listed["llama"]["aliases"] == {"production": 1}
    assert listed["tofu"]["description"] == "TOFU"
    assert "llama" in grin("model", "list").stdout  # the table for people

    again = grin("model", "register", "tofu")
    assert again.exit_code == 1 and "already registered" in again.stderr
    bad = grin("model", "register", "x", "--gate-policy", '{"max_rounds": 0}')
    assert bad.exit_code == 1 and "max_rounds" in bad.stderr


def test_file_show_and_list_a_ticket(tofu: Grin) -> None:
    filed = tofu.json(*_file_args(tofu, "--hparam", "p_percent=0.5", "--hparam", "seed=7", "--due-date", "2031-01-31"))
    assert filed["status"] == "queued" and isinstance(filed["ticket_id"], int)

    shown = tofu.json("ticket", "show", str(filed["ticket_id"]))
    assert shown["subject"] == "Jane Doe"
    assert shown["hparams"] == {"p_percent": 0.5, "seed": 7}
    assert shown["due_date"] == "2031-01-31"
    assert [(h["kind"], h["to"]) for h in shown["history"]] == [("ticket.filed", "queued")]

    listed = tofu.json("ticket", "list", "--status", "queued")
    assert [t["ticket_id"] for t in listed] == [filed["ticket_id"]]
    assert "subject" not in listed[0]
    assert "Jane Doe" not in tofu("ticket", "list").stdout
    assert tofu.json("ticket", "list", "--status", "completed") == []


def test_request_file_with_flags_overriding_it(tofu: Grin, tmp_path: Path) -> None:
    forget = f"{tofu.settings.storage_url}/{tofu.objects()[0]}"
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "subject": "Jane Doe", "model": "tofu@production", "forget_uris": [forget], "method": "graddiff",
        "requested_by": "alice", "legal_basis": "GDPR Art. 17", "hparams": {"epochs": 5},
    }))  # fmt: skip
    filed = tofu.json("ticket", "file", "--request", str(request), "--method", "po")
    shown = tofu.json("ticket", "show", str(filed["ticket_id"]))
    assert (shown["model_ref"], shown["method"], shown["hparams"]) == (
        "tofu@production",
        "po",
        {"epochs": 5},
    )

    from_stdin = tofu("ticket", "file", "--request", "-", "--json", input=request.read_text())
    assert from_stdin.exit_code == 0, from_stdin.output


def test_same_idempotency_key_files_once(tofu: Grin) -> None:
    first = tofu.json(*_file_args(tofu, "--idempotency-key", "case-17"))
    second = tofu.json(*_file_args(tofu, "--idempotency-key", "case-17"))
    assert first["ticket_id"] == second["ticket_id"]
    assert tofu.tickets() == 1
    conflict = tofu(*_file_args(tofu, "--idempotency-key", "case-17", "--legal-basis", "contract"))
    assert conflict.exit_code == 1 and "was used for a different request" in conflict.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt5"], "unknown model 'gpt5'"),
        (["--forget", "https://example.com/jane.json"], "unsupported URI scheme 'https'"),
        (["--forget", "{store}/inbox/nobody.json"], "no object at"),
        (["--retain", "{store}/inbox/nobody.json"], "no object at"),
        (["--hparam", "learning_rate=high"], "hparams.learning_rate"),
        (["--hparam", "momentum=0.9"], "hparams.momentum: Extra inputs are not permitted"),
        (["--due-date", "next week"], "due_date"),
    ],
)
def test_bad_flags_exit_non_zero_and_write_nothing(tofu: Grin, args: list[str], message: str) -> None:
    args = [a.format(store=tofu.settings.storage_url) for a in args]
    before = (tofu.tickets(), tofu.objects())
    # The later flag wins, so each case replaces one good value with a bad one.
    result = tofu(*_file_args(tofu, *args))
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert (tofu.tickets(), tofu.objects()) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"subject": "Jane Doe",', "is not valid JSON"),
        ('["not", "an", "object"]', "must hold a JSON object"),
        ('{"forget_uris": []}', "forget_uris: List should have at least 1 item"),
        (
            '{"forget_uris": ["{store}/inbox/jane.json"], "colour": "red"}',
            "colour: Extra inputs are not permitted",
        ),
    ],
)
def test_bad_request_files_exit_non_zero_and_write_nothing(
    tofu: Grin, tmp_path: Path, content: str, message: str
) -> None:
    request = tmp_path / "request.json"
    request.write_text(content.replace("{store}", tofu.settings.storage_url))
    before = (tofu.tickets(), tofu.objects())
    result = tofu(
        "ticket", "file", "--request", str(request),
        "--subject", "Jane Doe", "--model", "tofu", "--requested-by", "alice", "--legal-basis", "GDPR Art. 17",
    )  # fmt: skip
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert (tofu.tickets(), tofu.objects()) == before


def test_status_help_names_every_status() -> None:
    from cli.commands.ticket import STATUSES
    from infra.ticket_status import TicketStatus

    assert STATUSES.split(", ") == [s.value for s in TicketStatus]


def test_missing_arguments_and_unknown_ids(tofu: Grin) -> None:
    no_forget = tofu(
        "ticket",
        "file",
        "--subject",
        "J",
        "--model",
        "tofu",
        "--requested-by",
        "a",
        "--legal-basis",
        "b",
    )
    assert no_forget.exit_code == 1 and "forget_uris: Field required" in no_forget.stderr
    unknown = tofu("ticket", "show", "4242")
    assert unknown.exit_code == 1 and "no ticket 4242" in unknown.stderr
    status = tofu("ticket", "list", "--status", "done")
    assert status.exit_code == 1 and "unknown status 'done'" in status.stderr


def test_on_postgres_and_s3(grin_for: Callable[[Settings], Grin], pg_settings: Settings) -> None:
    grin = grin_for(pg_settings)
    name = f"tofu-{uuid.uuid4().hex[:8]}"  # the session's database is shared with other tests
    bucket = pg_settings.storage_url.removeprefix("s3://").split("/")[0]
    uri, sha256 = store_checkpoint(S3Store(bucket, "published", s3_client(pg_settings)), name)
    grin.json("model", "register", name, "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    uri = open_store(pg_settings).put_bytes("inbox/jane.json", b'[{"question": "q", "answer": "a"}]').uri
    filed = grin.json(
        "ticket", "file", "--subject", "Jane Doe", "--model", f"{name}@1", "--forget", uri,
        "--requested-by", "alice", "--legal-basis", "GDPR Art. 17",
    )  # fmt: skip
    assert grin.json("ticket", "show", str(filed["ticket_id"]))["forget_uris"] == [uri]
    before = grin.tickets()
    missing = grin("ticket", "file", "--subject", "J", "--model", name, "--forget", uri + ".gone",
                   "--requested-by", "a", "--legal-basis", "b")  # fmt: skip
    assert missing.exit_code == 1 and "no object at s3://" in missing.stderr
    assert grin.tickets() == before
