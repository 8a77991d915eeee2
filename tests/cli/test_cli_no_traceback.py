"""Every `grin` command ends in one line, never a traceback, on bad configuration and bad input (issue 25).

Each command runs with a GRIN_* variable it cannot use (GRIN_INTAKE_ROOTS not a JSON list, a
GRIN_STATE_DIR that is a file, GRIN_GATE not JSON) and then with one bad argument; it must exit
non-zero with one `error: ` line on stderr and raise nothing but SystemExit. The checks of content
(import, register, intake, audit heads) are in their own test files; this one is the sweep.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.tickets  # noqa: F401 - before CliRunner swaps the streams: Prefect's logging keeps the first it sees
import tasks.purge  # noqa: F401 - (the same)
from cli.app import app
from infra.settings import Settings, get_settings
from tests.cli.conftest import Grin
from tests.fixtures.services import settings_env

COMMANDS = [
    ["db", "upgrade"],
    ["db", "downgrade", "base"],
    ["model", "register", "x"],
    ["model", "list"],
    ["model", "alias", "x", "production", "1"],
    ["model", "purge-superseded"],
    ["model", "rebuild", "x"],
    ["model", "import", "x", "/nonexistent"],
    ["model", "train", "x", "--manifest", "file:///x"],
    [
        "ticket",
        "file",
        "--subject",
        "J",
        "--model",
        "x",
        "--forget",
        "file:///x",
        "--requested-by",
        "a",
        "--legal-basis",
        "b",
    ],
    ["ticket", "list"],
    ["ticket", "show", "1"],
    ["ticket", "process", "1"],
    ["ticket", "batch", "x"],
    ["ticket", "requeue", "1", "--reason", "r"],
    ["ticket", "reclaim"],
    ["ticket", "report", "1"],
    ["audit", "head"],
    ["audit", "verify"],
    ["audit", "verify", "--expect-head", "store"],
    ["audit", "log"],
    ["audit", "verify-exact", "x@1"],
    ["serve"],
    ["worker"],
    ["worker", "--alive"],
    ["demo"],
]

CONFIGURATIONS = {
    "intake roots not a JSON list": lambda tmp: {"GRIN_INTAKE_ROOTS": "file:///srv/inbox/"},
    "state dir is a file": lambda tmp: {"GRIN_STATE_DIR": str(_a_file(tmp))},
    "gate not JSON": lambda tmp: {"GRIN_GATE": "strict"},
}


def _a_file(tmp: Path) -> Path:
    path = tmp / "state-file"
    path.write_text("not a directory")
    return path


def _one_line_no_traceback(result, args) -> None:
    assert result.exit_code not in (0, None), (args, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.output, (args, result.output)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, (args, result.stderr)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c[:3]) for c in COMMANDS])
@pytest.mark.parametrize("config", list(CONFIGURATIONS), ids=list(CONFIGURATIONS))
def test_every_command_refuses_a_bad_configuration_in_one_line(
    settings: Settings, tmp_path: Path, config: str, args: list[str]
) -> None:
    env = {**settings_env(settings), **CONFIGURATIONS[config](tmp_path)}
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, args, env=env)
    finally:
        get_settings.cache_clear()
    _one_line_no_traceback(result, args)
    assert {
        "intake roots not a JSON list": "GRIN_INTAKE_ROOTS must be a JSON list",
        "state dir is a file": "is not a directory (GRIN_STATE_DIR)",
        "gate not JSON": "configuration error",
    }[config] in result.stderr, (args, result.stderr)


def test_every_command_refuses_bad_input_in_one_line(tofu: Grin, tmp_path: Path) -> None:
    not_utf8 = tmp_path / "request.json"
    not_utf8.write_bytes(b'{"subject": "Ren\xe9e"}')
    cases = [
        ["db", "downgrade", "no-such-revision"],
        ["model", "register", "bad name!"],
        ["model", "register", "x", "--gate-policy", "{"],
        ["model", "register", "x", "--checkpoint-uri", "file:///etc", "--checkpoint-sha256", "a" * 64],
        ["model", "alias", "tofu", "production", "9"],
        ["model", "import", "bad name!", "/nonexistent"],
        ["model", "import", "x", "/nonexistent"],
        ["model", "rebuild", "no-such-model"],
        ["model", "rebuild", "tofu", "--recipe", "[1]"],
        ["model", "train", "x", "--base", "no-such-model@1", "--manifest", "file:///x"],
        ["model", "train", "x", "--recipe", "lr", "--manifest", "file:///x"],
        ["ticket", "file", "--request", str(not_utf8)],
        ["ticket", "file", "--request", str(tmp_path / "missing.json")],
        ["ticket", "show", "999"],
        ["ticket", "process", "999"],
        ["ticket", "batch", "no-such-model"],
        ["ticket", "requeue", "999", "--reason", "r"],
        ["ticket", "report", "999"],
        ["audit", "verify", "--expect-head", str(tmp_path / "missing.json")],
        ["audit", "verify", "--expect-head", "store"],
        ["audit", "verify-exact", "tofu@1"],  # not a rebuilt version
        ["audit", "verify-exact", "no-such-model@1"],
        ["bench", "tofu", "--data-dir", str(tmp_path / "no-tofu")],
    ]
    for args in cases:
        result = tofu(*args)
        _one_line_no_traceback(result, args)
