"""A ticket whose scoring and unlearning run on two processes (GRIN_STAGE_PROCESSES=2, gloo on CPU)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from infra.db.models import AuditRecord
from infra.settings import get_settings
from infra.storage import open_store
from tasks.resources import sessions
from tests.fixtures.pipeline import LENIENT_GATE, file_ticket

pytestmark = pytest.mark.slow


def test_a_ticket_scored_and_unlearned_on_two_processes_registers_a_version_that_says_so(
        inline_settings, published_model, forget_objects, use_settings):
    settings = inline_settings
    use_settings(settings, GRIN_STAGE_PROCESSES="2")
    assert get_settings().stage_processes == 2
    model = published_model(settings, gate_policy={**LENIENT_GATE, "max_rounds": 1})
    ticket_id = file_ticket(settings, model, forget_objects(settings, model.forget)[0],
                            hparams={"max_epochs": 4})

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "completed", report.reason
    with sessions(settings).begin() as session:
        record = session.scalars(select(AuditRecord).where(AuditRecord.kind == "unlearning.registered")).one()
        workers = record.payload["workers"]
        assert workers["score"]["processes"] == workers["unlearn"]["processes"] == 2
        assert workers["evaluate"]["processes"] == 1
    assert report.after["forget_rougeL"] < report.before["forget_rougeL"]  # the 2-process unlearning worked
    assert open_store(settings).list("scratch/") == []
