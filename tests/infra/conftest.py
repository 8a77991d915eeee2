"""Fixtures for the infra tests: the same database tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infra import registry
from infra.db.session import make_engine, make_sessionmaker
from infra.ticket_request import TicketRequest


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the test's own."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_pg_url")


@pytest.fixture
def db(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def model(db: sessionmaker[Session]) -> str:
    """A registered model `tofu` with version 1 under the `production` alias."""
    with db.begin() as session:
        registry.register_model("tofu", session=session)
        registry.add_version(
            "tofu",
            session=session,
            checkpoint_uri="s3://models/tofu/v1",
            checkpoint_sha256="a" * 64,
            training_manifest_uri="s3://models/tofu/v1/manifest.json",
            eval_suite_uri="s3://models/tofu/v1/eval_suite.json",
        )
        registry.set_alias("tofu", "production", 1, session=session)
    return "tofu"


@pytest.fixture
def make_request() -> Callable[..., TicketRequest]:
    def build(**fields: Any) -> TicketRequest:
        defaults: dict[str, Any] = {
            "subject": "Jane Doe",
            "model": "tofu",
            "forget_uris": ["s3://intake/jane.json"],
            "requested_by": "alice@example.com",
            "legal_basis": "GDPR Art. 17",
        }
        return TicketRequest(**{**defaults, **fields})

    return build


@pytest.fixture(autouse=True)
def _isolated(clean_grin_environment: None) -> None:
    """The tests say which settings they use; a developer's GRIN_* variables must not leak in."""
