"""Classification through the real flow (PostgreSQL, moto S3, a Prefect API, ML stages in-process): a
parent checkpoint that fails verification rejects the ticket instead of retrying it. (Recovery of a
killed run: test_kill_recovery.py; of a killed worker: test_worker_kill.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from infra import audit, queue
from infra.db.models import ModelVersion, TicketStatus
from infra.intake import file_request
from infra.storage import locate
from infra.ticket_request import TicketRequest
from tasks.resources import sessions

pytestmark = pytest.mark.slow


@pytest.fixture
def inline_settings(prefect_api, make_settings, fresh_pg_url, s3_storage_fields, use_settings):
    settings = make_settings(database_url=fresh_pg_url, gpu_dispatch="inline", **s3_storage_fields)
    use_settings(settings)
    return settings


def _file(settings, model, forget_uri) -> int:
    request = TicketRequest(subject="author 199", model=model.name, forget_uris=[forget_uri],
                            requested_by="dpo@example.org", legal_basis="GDPR Art. 17")
    with sessions(settings).begin() as session:
        return file_request(request, session=session, settings=settings).id


def _moves(settings, ticket_id) -> list[tuple[str, str]]:
    with sessions(settings).begin() as session:
        return [(r.payload["from"], r.payload["to"]) for r in audit.records(session=session, ticket_id=ticket_id)
                if r.kind == "ticket.transition"]


def test_a_parent_checkpoint_that_fails_verification_rejects_the_ticket_once(
        inline_settings, published_model, forget_objects):
    settings = inline_settings
    model = published_model(settings)
    with sessions(settings).begin() as session:
        checkpoint_uri = session.scalar(select(ModelVersion.checkpoint_uri).where(ModelVersion.version == 1))
    owner_store, prefix = locate(checkpoint_uri, settings=settings)
    owner_store.put_bytes(f"{prefix}/model.safetensors", b"swapped after registration")
    forget_uri, _ = forget_objects(settings, model.forget)
    ticket_id = _file(settings, model, forget_uri)

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "rejected" and "does not match the manifest" in report.reason
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts) == (TicketStatus.rejected, 1)
        assert "model.safetensors" in ticket.error_reason
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
    assert ("failed", "queued") not in _moves(settings, ticket_id)
