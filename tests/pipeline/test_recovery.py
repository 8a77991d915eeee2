"""Classification through the real flow (PostgreSQL, moto S3, a Prefect API, ML stages in-process): a
parent checkpoint that fails verification rejects the ticket instead of retrying it. (Recovery of a
killed run: test_kill_recovery.py; of a killed worker: test_worker_kill.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from infra import queue
from infra.db.models import ModelVersion
from infra.storage import locate
from infra.ticket_status import TicketStatus
from tasks.resources import sessions
from tests.fixtures.pipeline import file_ticket, ticket_transitions

pytestmark = pytest.mark.slow


def test_a_parent_checkpoint_that_fails_verification_rejects_the_ticket_once(
    inline_settings, published_model, forget_objects
):
    settings = inline_settings
    model = published_model(settings)
    with sessions(settings).begin() as session:
        checkpoint_uri = session.scalar(select(ModelVersion.checkpoint_uri).where(ModelVersion.version == 1))
    owner_store, prefix = locate(checkpoint_uri, settings=settings)
    owner_store.put_bytes(f"{prefix}/model.safetensors", b"swapped after registration")
    forget_uri, _ = forget_objects(settings, model.forget)
    ticket_id = file_ticket(settings, model, forget_uri)

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "rejected" and "does not match the manifest" in report.reason
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts) == (TicketStatus.rejected, 1)
        assert "model.safetensors" in ticket.error_reason
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
    assert ("failed", "queued") not in ticket_transitions(settings, ticket_id)
