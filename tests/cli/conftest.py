"""Run `grin` in-process (typer's CliRunner) against the settings of a test."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.app import app
from infra.db.models import Ticket
from infra.db.session import make_engine, make_sessionmaker
from infra.settings import Settings, get_settings
from infra.storage import LocalStore, open_store
from tests.fixtures.checkpoints import store_checkpoint
from tests.fixtures.services import settings_env


@dataclass
class Grin:
    settings: Settings

    def __call__(self, *args: str, input: str | None = None) -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), env=settings_env(self.settings), input=input)
        finally:
            get_settings.cache_clear()

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def tickets(self) -> int:
        engine = make_engine(self.settings.database_url)
        with make_sessionmaker(engine).begin() as session:
            count = session.scalar(select(func.count()).select_from(Ticket))
        engine.dispose()
        return count

    def objects(self) -> list[str]:
        return open_store(self.settings).list()


@pytest.fixture(autouse=True)
def _isolated(clean_grin_environment: None) -> None:
    """The tests say which settings they use; a developer's GRIN_* variables must not leak in."""


@pytest.fixture
def grin_for() -> Callable[[Settings], Grin]:
    return Grin


@pytest.fixture
def grin(settings: Settings) -> Grin:
    """grin on the embedded defaults (SQLite + local store) of this test."""
    return Grin(settings)


@pytest.fixture
def tofu(grin: Grin) -> Grin:
    """`grin` with model tofu registered (version 1 under `production`) and a forget file stored."""
    # Outside the service's store, as a model published elsewhere would be.
    uri, sha256 = store_checkpoint(LocalStore(grin.settings.state_dir / "published"), "tofu/v1")
    grin.json("model", "register", "tofu", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    open_store(grin.settings).put_bytes("inbox/jane.json", b'[{"question": "q", "answer": "a"}]')
    return grin
