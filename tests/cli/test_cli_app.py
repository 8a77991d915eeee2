"""The installed `grin` command, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from infra.settings import Settings
from tests.fixtures.services import settings_env

GRIN = Path(sys.executable).with_name("grin")


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRIN_")}
    return subprocess.run(
        [str(GRIN), *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_commands_without_importing_ml_or_orchestration(tmp_path: Path) -> None:
    result = _run("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0
    for command in ("db", "model", "ticket", "audit"):
        assert command in result.stdout
    # Building every sub-command's parser must not pull in torch, transformers or prefect.
    probe = (
        "import sys, typer.main, cli.app; typer.main.get_command(cli.app.app); "
        "print([m for m in ('torch', 'transformers', 'prefect', 'datasets') if m in sys.modules])"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert imported.stdout.strip() == "[]"


def test_db_upgrade_works_from_any_directory(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings: Settings = make_settings(state_dir=tmp_path / "fresh-state")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run("db", "upgrade", "--json", env=settings_env(settings), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["revision"] == "0005"
    assert (tmp_path / "fresh-state" / "grin.db").is_file()


def test_bad_input_is_one_line_on_stderr_and_a_non_zero_exit(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "request.json"
    bad.write_text('{"subject": "Jane Doe", "model": ')
    result = _run("ticket", "file", "--request", str(bad), env=settings_env(settings), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --request") and "is not valid JSON" in result.stderr
    assert "Jane Doe" not in result.stderr


def test_unsafe_production_settings_stop_the_command(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    env = {**settings_env(make_settings()), "GRIN_ENV": "prod"}
    result = _run("ticket", "list", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "refuses a SQLite database" in result.stderr
