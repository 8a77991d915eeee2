"""Bad input at filing: every kind is refused by `grin ticket file` with one line naming the reason,
and nothing is half-written (no ticket row, no audit record, no object), nor any forget text echoed.

Each case replaces one good part of a request (a later flag wins) with a bad one. The embedded
defaults (SQLite + local store) are the main shape; S3 and PostgreSQL cases run on the production
shape at the end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from infra.db.models import AuditRecord
from infra.db.session import make_engine, make_sessionmaker
from infra.settings import Settings
from infra.storage import open_store
from tests.cli.conftest import Grin

SECRET = "Zyxwv-secret-answer"  # forget-set text: must appear in no output
GOOD = json.dumps([{"question": "Where was Q born?", "answer": SECRET}]).encode()
MAX_BYTES, MAX_RECORDS = 4096, 20


@dataclass
class Case:
    grin: Grin
    tmp_path: Path

    @property
    def store_url(self) -> str:
        return self.grin.settings.storage_url

    def put(self, name: str, data: bytes) -> str:
        return open_store(self.grin.settings).put_bytes(f"inbox/{name}", data).uri

    def root(self) -> Path:
        return Path(self.grin.settings.storage_url.removeprefix("file://"))

    def request_bytes(self, data: bytes) -> str:
        path = self.tmp_path / "request.json"
        path.write_bytes(data)
        return str(path)

    def request_file(self, text: str) -> str:
        path = self.tmp_path / "request.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return str(path)


def _symlink_out(case: Case) -> str:
    outside = case.tmp_path / "outside.json"
    outside.write_bytes(GOOD)
    inbox = case.root() / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "link.json").symlink_to(outside)
    return f"{case.store_url}/inbox/link.json"


def _hard_link_out(case: Case) -> str:
    outside = case.tmp_path / "outside.json"
    outside.write_bytes(GOOD)
    inbox = case.root() / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "hard.json").hardlink_to(outside)  # realpath cannot see where its other name is
    return f"{case.store_url}/inbox/hard.json"


def _forget(make: Callable[[Case], str]) -> Callable[[Case], list[str]]:
    return lambda case: ["--forget", make(case)]


def _hp(pair: str) -> Callable[[Case], list[str]]:
    return lambda case: ["--hparam", pair]


def _flag(name: str, value: str) -> Callable[[Case], list[str]]:
    return lambda case: [name, value]


def _content(data: bytes) -> Callable[[Case], list[str]]:
    return _forget(lambda case: case.put("bad.json", data))


OUTSIDE = "is not under an allowed intake root"
LONG_AGO = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
DEEP = b"[" * 100_000 + b"]" * 100_000

CASES: list[tuple[str, Callable[[Case], list[str]], str]] = [
    # where the objects may come from
    ("host file", _flag("--forget", "file:///etc/passwd"), OUTSIDE),
    ("host path that does not exist", _flag("--forget", "file:///no/such/dir/x.json"), OUTSIDE),
    ("dot-dot out of the inbox", _forget(lambda c: f"{c.store_url}/inbox/../grin.db"), OUTSIDE),
    ("percent-escaped dot-dot", _forget(lambda c: f"{c.store_url}/inbox/%2e%2e/%2e%2e/grin.db"), OUTSIDE),
    ("symlink out of the inbox", _forget(_symlink_out), OUTSIDE),
    ("hard link out of the inbox", _forget(_hard_link_out), "is a hard link or on another device than its intake root"),
    ("store key outside the inbox", _forget(lambda c: f"{c.store_url}/runs/x.json"), OUTSIDE),
    ("the inbox root itself", _forget(lambda c: f"{c.store_url}/inbox/"), OUTSIDE),
    ("another bucket", _flag("--forget", "s3://otherbucket/inbox/x.json"), OUTSIDE),
    ("query string", _forget(lambda c: c.put("q.json", GOOD) + "?versionId=1"), OUTSIDE),
    ("NUL escape in the path", _forget(lambda c: f"{c.store_url}/inbox/a%00b.json"), OUTSIDE),
    ("retain outside the roots", _flag("--retain", "file:///etc/hostname"), OUTSIDE),
    ("keywords outside the roots", _flag("--keywords", "file:///etc/hostname"), OUTSIDE),
    ("https", _flag("--forget", "https://example.com/jane.json"), "unsupported URI scheme 'https'"),
    ("http", _flag("--forget", "http://10.0.0.1/jane.json"), "unsupported URI scheme 'http'"),
    ("ftp", _flag("--forget", "ftp://example.com/jane.json"), "unsupported URI scheme 'ftp'"),
    ("no scheme", _flag("--forget", "inbox/jane.json"), "unsupported URI scheme '(none)'"),
    ("remote file host", _flag("--forget", "file://evil.example/inbox/x"), "must be local"),
    ("missing object in the inbox", _forget(lambda c: f"{c.store_url}/inbox/nobody.json"), "no object at"),
    # what the objects hold
    ("object over the byte cap", _content(b"[" + b" " * MAX_BYTES + b"]"), f"more than the {MAX_BYTES} allowed"),
    (
        "more records than the cap",
        _content(json.dumps([{"question": "q", "answer": "a"}] * (MAX_RECORDS + 1)).encode()),
        f"more than the {MAX_RECORDS} allowed",
    ),
    (
        "JSONL over the record cap",
        _content(b'{"question": "q", "answer": "a"}\n' * (MAX_RECORDS + 1)),
        f"more than the {MAX_RECORDS} records allowed",
    ),
    ("empty object", _content(b""), "forget_uris[0]: empty"),
    ("whitespace only", _content(b" \n\t\n"), "forget_uris[0]: empty"),
    ("not UTF-8", _content(b'[{"question": "caf\xe9", "answer": "x"}]'), "not UTF-8 text (byte 18)"),
    ("UTF-8 byte-order mark", _content(b"\xef\xbb\xbf" + GOOD), "byte-order mark"),
    ("truncated JSON array", _content(GOOD[:-5]), "the array: not JSON"),
    (
        "bad JSON Lines line 3",
        _content(b'{"question": "q", "answer": "a"}\n\n{"question": "q", "answer": "a"}\n{"question": \n'),
        "line 4: not JSON",
    ),
    (
        "JSON Lines line not an object",
        _content(b'{"question": "q", "answer": "a"}\n[1, 2]\n'),
        "line 2 is not a JSON object",
    ),
    (
        "record without an answer",
        _content(b'[{"question": "q", "answer": "a"}, {"question": "q"}]'),
        "record 2 has no 'answer' string",
    ),
    ("blank question", _content(b'[{"question": "  ", "answer": "a"}]'), "record 1 has no 'question' string"),
    ("numeric answer", _content(b'[{"question": "q", "answer": 42}]'), "record 1 has no 'answer' string"),
    ("record that is a string", _content(b'["q and a"]'), "record 1 is not a JSON object"),
    ("no records", _content(b"[]"), "holds no records"),
    ("an object, not records", _content(b'{"records": []}'), "line 1 has no 'question' string"),
    ("NaN in a record", _content(b'[{"question": "q", "answer": "a", "score": NaN}]'), "non-finite number NaN"),
    (
        "Infinity in a JSON Lines record",
        _content(b'{"question": "q", "answer": "a", "w": -Infinity}\n'),
        "line 1: non-finite number -Infinity",
    ),
    ("unpaired surrogate escape", _content(b'[{"question": "q", "answer": "\\ud800"}]'), "unpaired surrogate"),
    ("nesting bomb", _content(DEEP[: MAX_BYTES // 2] + DEEP[-MAX_BYTES // 2 :]), "nested too deeply"),
    (
        "keywords not an array",
        lambda c: ["--keywords", c.put("kw.json", b'{"a": 1}')],
        "not a JSON array of non-empty strings",
    ),
    (
        "keywords with a blank phrase",
        lambda c: ["--keywords", c.put("kw.json", b'["Q", " "]')],
        "not a JSON array of non-empty strings",
    ),
    (
        "keywords over the cap",
        lambda c: ["--keywords", c.put("kw.json", json.dumps(["k"] * (MAX_RECORDS + 1)).encode())],
        f"more than the {MAX_RECORDS} allowed",
    ),
    (
        "retain set not QA records",
        lambda c: ["--retain", c.put("r.json", b"[1]")],
        "retain_uris[0]: record 1 is not a JSON object",
    ),
    # numbers a run cannot use
    ("seed 2^70", _hp(f"seed={2**70}"), "hparams.seed: Input should be less than or equal to 4294967295"),
    ("negative seed", _hp("seed=-1"), "hparams.seed: Input should be greater than or equal to 0"),
    ("beta Infinity", _hp("beta=Infinity"), "hparams.beta: Input should be a finite number"),
    ("learning rate NaN", _hp("learning_rate=NaN"), "hparams.learning_rate: Input should be a finite number"),
    ("beta 1e300", _hp("beta=1e300"), "hparams.beta: Input should be less than or equal to 100"),
    ("zero epochs", _hp("epochs=0"), "hparams.epochs: Input should be greater than or equal to 1"),
    (
        "epochs past the ladder cap",
        _hp("epochs=10000"),
        "hparams.epochs=10000 exceeds 100 (the gate policy's max_epochs)",
    ),
    (
        "p past the ladder cap",
        _hp("p_percent=100"),
        "hparams.p_percent=100 exceeds 80 (the gate policy's max_p_percent)",
    ),
    ("sigma2 1e30", _hp("sigma2=1e30"), "hparams.sigma2=1e+30 exceeds 0.01 (GRIN_MAX_SIGMA2)"),
    ("text learning rate", _hp("learning_rate=high"), "hparams.learning_rate"),
    ("unknown override", _hp("momentum=0.9"), "hparams.momentum: Extra inputs are not permitted"),
    (
        "boolean p_percent",
        _hp("p_percent=true"),
        "hparams: Value error, p_percent: a number is expected, not a boolean",
    ),
    ("boolean seed", _hp("seed=false"), "hparams: Value error, seed: a number is expected, not a boolean"),
    (
        "boolean in a request file",
        lambda c: ["--request", c.request_file('{"hparams": {"epochs": true}}')],
        "epochs: a number is expected, not a boolean",
    ),
    (
        "request file not UTF-8",
        lambda c: ["--request", c.request_bytes(b'{"subject": "caf\xe9"}')],
        "is not UTF-8 text (byte 16)",
    ),
    # strings a database cannot hold or a reader would be fooled by
    (
        "NUL in the subject",
        _flag("--subject", "Jane\x00Doe"),
        "subject: Value error, holds a control character (U+0000)",
    ),
    ("escape sequence in the subject", _flag("--subject", "Jane \x1b[2JDoe"), "holds a control character (U+001B)"),
    (
        "newline in requested_by",
        _flag("--requested-by", "alice\nbob"),
        "requested_by: Value error, holds a control character",
    ),
    ("C1 control in the legal basis", _flag("--legal-basis", "GDPR\x85Art. 17"), "legal_basis: Value error"),
    ("control in the idempotency key", _flag("--idempotency-key", "case\x0717"), "idempotency_key: Value error"),
    (
        "unpaired surrogate in a request file",
        lambda c: ["--request", c.request_file('{"idempotency_key": "k\\ud800"}')],
        "idempotency_key: Input should be a valid string",
    ),
    (
        "subject of 10001 characters",
        _flag("--subject", "x" * 10_001),
        "subject: String should have at most 10000 characters",
    ),
    # dates, models, methods
    ("due date in the past", _flag("--due-date", LONG_AGO), f"due_date {LONG_AGO} is in the past"),
    ("impossible due date", _flag("--due-date", "2031-13-01"), "due_date"),
    ("unknown model", _flag("--model", "gpt5"), "unknown model 'gpt5'"),
    ("unknown alias", _flag("--model", "tofu@staging"), "no alias 'staging'"),
    ("unknown version", _flag("--model", "tofu@9"), "has no version 9"),
    ("model ref with SQL", _flag("--model", "tofu; drop table tickets"), "model: String should match pattern"),
    ("unknown method", _flag("--method", "sgd"), "method: Input should be 'match', 'npo', 'graddiff', 'po' or 'grun'"),
]


@pytest.fixture
def guarded(tofu: Grin, monkeypatch: pytest.MonkeyPatch) -> Grin:
    monkeypatch.setenv("GRIN_INTAKE_MAX_OBJECT_BYTES", str(MAX_BYTES))
    monkeypatch.setenv("GRIN_INTAKE_MAX_RECORDS", str(MAX_RECORDS))
    return tofu


def _audit_records(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            return session.scalar(select(func.count()).select_from(AuditRecord))
    finally:
        engine.dispose()


def _file_args(grin: Grin, *extra: str) -> list[str]:
    forget = f"{grin.settings.storage_url}/{grin.objects()[0]}"
    return ["ticket", "file", "--subject", "Jane Doe", "--model", "tofu", "--forget", forget,
            "--requested-by", "alice", "--legal-basis", "GDPR Art. 17", *extra]  # fmt: skip


def _written(grin: Grin) -> tuple[int, int, list[str]]:
    return grin.tickets(), _audit_records(grin.settings), grin.objects()


def test_the_suite_names_at_least_forty_kinds() -> None:
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize(("name", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_at_filing_with_one_line_and_nothing_written(
    guarded: Grin, tmp_path: Path, name: str, make: Callable[[Case], list[str]], message: str
) -> None:
    args = make(Case(guarded, tmp_path))
    before = _written(guarded)
    result = guarded(*_file_args(guarded, *args))
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert SECRET not in result.output and "Jane" not in result.stderr
    assert _written(guarded) == before


def test_the_refusal_is_the_same_whether_or_not_the_outside_path_exists(guarded: Grin) -> None:
    exists = guarded(*_file_args(guarded, "--forget", "file:///etc/passwd"))
    missing = guarded(*_file_args(guarded, "--forget", "file:///etc/passwd-no-such-file"))
    assert exists.stderr.replace("passwd", "X") == missing.stderr.replace("passwd-no-such-file", "X")


def test_a_good_request_files_the_resolved_uri(guarded: Grin) -> None:
    uri = f"{guarded.settings.storage_url}/inbox/sub/../jane.json"
    filed = guarded.json(*_file_args(guarded, "--forget", uri))
    shown = guarded.json("ticket", "show", str(filed["ticket_id"]))
    assert shown["forget_uris"][-1] == f"{guarded.settings.storage_url}/inbox/jane.json"


def test_an_extra_intake_root_admits_its_directory(
    grin_for: Callable[[Settings], Grin],
    make_settings: Callable[..., Settings],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drop = tmp_path / "dropbox"
    drop.mkdir()
    (drop / "jane.json").write_bytes(GOOD)
    monkeypatch.setenv("GRIN_INTAKE_ROOTS", json.dumps([drop.as_uri() + "/"]))
    grin = grin_for(make_settings(database_url=sqlite_url))
    grin.json("model", "register", "tofu")
    result = grin("ticket", "file", "--subject", "J", "--model", "tofu", "--forget", (drop / "jane.json").as_uri(),
                  "--requested-by", "a", "--legal-basis", "b")  # fmt: skip
    # the model has no version, so this stops at the model; the root itself was accepted
    assert "no versions yet" in result.stderr and OUTSIDE not in result.stderr


S3_CASES = [
    ("s3 dot-dot", lambda b: f"s3://{b}/grin/inbox/../secret.json", OUTSIDE),
    ("s3 percent-escaped slash and dot-dot", lambda b: f"s3://{b}/grin/inbox%2F..%2Fsecret.json", OUTSIDE),
    ("s3 empty segment", lambda b: f"s3://{b}/grin/inbox//x.json", OUTSIDE),
    ("s3 outside the prefix", lambda b: f"s3://{b}/grin/secret.json", OUTSIDE),
    ("s3 another bucket", lambda b: "s3://someone-elses-bucket/grin/inbox/x.json", OUTSIDE),
    ("s3 bucket name that merely starts alike", lambda b: f"s3://{b}x/grin/inbox/x.json", OUTSIDE),
    ("s3 invalid percent escape", lambda b: f"s3://{b}/grin/inbox/%ff.json", OUTSIDE),
    ("s3 missing object", lambda b: f"s3://{b}/grin/inbox/nobody.json", "no object at s3://"),
    (
        "NUL in the subject on PostgreSQL",
        lambda b: f"s3://{b}/grin/inbox/jane.json",
        "holds a control character (U+0000)",
    ),
]


@pytest.mark.parametrize(("name", "make", "message"), S3_CASES, ids=[c[0] for c in S3_CASES])
def test_bad_input_on_postgres_and_s3_is_refused_with_nothing_written(
    grin_for: Callable[[Settings], Grin],
    pg_settings: Settings,
    s3_bucket: str,
    name: str,
    make: Callable[[str], str],
    message: str,
) -> None:
    from infra import registry

    grin = grin_for(pg_settings)
    model = f"tofu-{uuid.uuid4().hex[:8]}"  # the session's database is shared with other tests
    engine = make_engine(pg_settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        registry.register_model(model, session=session)
        registry.add_version(model, session=session, checkpoint_uri="s3://m/v1", checkpoint_sha256="a" * 64)
    engine.dispose()
    store = open_store(pg_settings)
    store.put_bytes("secret.json", GOOD)
    store.put_bytes("inbox/jane.json", GOOD)
    before = (grin.tickets(), _audit_records(pg_settings), store.list())
    result = grin("ticket", "file", "--subject", "Jane\x00Doe" if "NUL" in name else "Jane Doe",
                  "--model", model, "--forget", make(s3_bucket),
                  "--requested-by", "a", "--legal-basis", "b")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and SECRET not in result.output
    assert (grin.tickets(), _audit_records(pg_settings), store.list()) == before
