"""Intake checks a request against the registry and the stores before anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infra import intake, registry
from infra.db.models import AuditRecord, Ticket
from infra.db.session import make_engine, make_sessionmaker
from infra.errors import (
    InvalidRequestError,
    ObjectNotFoundError,
    UnknownModelError,
    UnsupportedURIError,
)
from infra.settings import Settings
from infra.storage import open_store


@dataclass
class Service:
    settings: Settings
    db: sessionmaker[Session]
    model: str
    forget_uri: str

    def counts(self) -> tuple[int, int, list[str]]:
        """Rows in tickets and audit_records, and the objects in the store."""
        with self.db.begin() as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket))
            records = session.scalar(select(func.count()).select_from(AuditRecord))
        return tickets, records, open_store(self.settings).list()

    def request(self, **fields: object) -> dict[str, object]:
        return {
            "subject": "Jane Doe",
            "model": self.model,
            "forget_uris": [self.forget_uri],
            "requested_by": "alice",
            "legal_basis": "GDPR Art. 17",
            **fields,
        }


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def service(request: pytest.FixtureRequest) -> Iterator[Service]:
    """A registered model (named per test: the PostgreSQL database is the session's) and a forget file."""
    settings: Settings = request.getfixturevalue("settings" if request.param == "sqlite+local" else "pg_settings")
    engine = make_engine(settings.database_url)
    db = make_sessionmaker(engine)
    name = f"tofu-{uuid.uuid4().hex[:8]}"
    with db.begin() as session:
        registry.register_model(name, session=session)
        registry.add_version(name, session=session, checkpoint_uri="s3://m/v1", checkpoint_sha256="a" * 64)
    forget = open_store(settings).put_bytes("inbox/jane.json", b'[{"question": "q", "answer": "a"}]')
    yield Service(settings, db, name, forget.uri)
    engine.dispose()


def test_a_good_request_is_queued(service: Service) -> None:
    tickets, records, objects = service.counts()
    with service.db.begin() as session:
        request = intake.parse_request(service.request())
        ticket = intake.file_request(request, session=session, settings=service.settings)
        assert (ticket.status.value, ticket.model_name) == ("queued", service.model)
    assert service.counts() == (tickets + 1, records + 1, objects)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"model": "gpt5"}, UnknownModelError, "unknown model 'gpt5'"),
        ({"model": "{model}@staging"}, UnknownModelError, "no alias 'staging'"),
        ({"forget_uris": []}, InvalidRequestError, "forget_uris: List should have at least 1 item"),
        (
            {"forget_uris": ["{ok}", "https://example.com/x.json"]},
            UnsupportedURIError,
            "unsupported URI scheme 'https'",
        ),
        ({"forget_uris": ["{ok}", "{missing}"]}, ObjectNotFoundError, "no object at"),
        ({"keywords_uri": "{missing}"}, ObjectNotFoundError, "no object at"),
        ({"hparams": {"p_percent": 0.5, "lr": 1}}, InvalidRequestError, "hparams.lr: Extra inputs"),
        (
            {"method": "sgd"},
            InvalidRequestError,
            "method: Input should be 'match', 'npo', 'graddiff', 'po' or 'grun'",
        ),
        (
            {"method": "grun", "hparams": {"p_percent": 2.0}},
            InvalidRequestError,
            "hparams p_percent select and perturb weights",
        ),
        ({"model": "tofu; drop table"}, InvalidRequestError, "model: String should match pattern"),
        (
            {"subject": "  "},
            InvalidRequestError,
            "subject: String should have at least 1 character",
        ),
    ],
)
def test_bad_requests_leave_no_row_or_object_behind(
    service: Service, change: dict[str, object], error: type[Exception], message: str
) -> None:
    missing = service.forget_uri.replace("jane.json", "nobody.json")

    def fill(value: object) -> object:
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str):
            return value.format(ok=service.forget_uri, missing=missing, model=service.model)
        return value

    before = service.counts()
    with pytest.raises(error, match=message), service.db.begin() as session:
        request = intake.parse_request(service.request(**{k: fill(v) for k, v in change.items()}))
        intake.file_request(request, session=session, settings=service.settings)
    assert service.counts() == before
