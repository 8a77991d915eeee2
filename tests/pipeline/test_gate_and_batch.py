"""The pipeline's other paths on PostgreSQL + moto S3 + a Prefect API, ML stages in-process."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from infra import audit, queue
from infra.db.models import AuditRecord, ModelVersion
from infra.storage import open_store
from infra.ticket_status import TicketStatus
from tasks.resources import sessions
from tests.fixtures.pipeline import LENIENT_GATE, file_ticket, ticket_transitions

pytestmark = pytest.mark.slow


def test_gate_failure_climbs_the_ladder_then_needs_review_with_nothing_registered(
    inline_settings, published_model, forget_objects
):
    settings = inline_settings
    # A bound no model can meet, so every round fails; two rounds, the second with 2x p and 2x epochs.
    model = published_model(
        settings, gate_policy={"forget_rougeL_max": 0.0, "max_rounds": 2, "ladder_epochs_factor": 2.0, "max_epochs": 2}
    )
    forget_uri, _ = forget_objects(settings, model.forget)
    ticket_id = file_ticket(settings, model, forget_uri, hparams={"epochs": 1, "max_epochs": 2, "retain_batch_size": 8})
    store = open_store(settings)
    checkpoints_before = store.list("checkpoints/")

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "needs_review"
    assert [(r.round, r.epochs, r.passed) for r in report.rounds] == [(1, 1, False), (2, 2, False)]
    assert report.rounds[1].p_percent == 2 * report.rounds[0].p_percent
    assert "forget ROUGE-L" in report.reason and report.version is None
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert ticket.status == TicketStatus.needs_review and ticket.result_version_id is None
        assert "gate failed after 2 round(s)" in ticket.error_reason
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
        assert audit.verify(session=session).ok
    path = ticket_transitions(settings, ticket_id)
    assert path[-4:] == [
        ("evaluating", "scoring"),
        ("scoring", "unlearning"),
        ("unlearning", "evaluating"),
        ("evaluating", "needs_review"),
    ]
    assert store.list("checkpoints/") == checkpoints_before  # both candidates were purged
    assert store.list("scratch/") == []


def test_a_batch_answers_three_tickets_with_one_version_and_one_audit_record_each_on_two_processes(
    inline_settings, published_model, forget_objects, use_settings
):
    settings = inline_settings
    # Batching is under test, not the gate (the end-to-end test runs the defaults): a short schedule
    # budget and a gate it passes, so the one run is quick. Scoring and unlearning run on two
    # processes (gloo; tests/core/test_distributed.py checks they equal one), so this also covers the
    # stages' multi-process path.
    use_settings(settings, GRIN_STAGE_PROCESSES="2")
    model = published_model(settings, gate_policy=LENIENT_GATE)
    thirds = [model.forget[i::3] for i in range(3)]
    ticket_ids = [
        file_ticket(
            settings, model, forget_objects(settings, rows)[0], hparams={"max_epochs": 8, "retain_batch_size": 8}
        )
        for rows in thirds
    ]

    from flows.tickets import batch_unlearning

    [report] = batch_unlearning(model.name, max_tickets=10)

    assert report.outcome == "completed", report.reason
    assert sorted(report.ticket_ids) == sorted(ticket_ids) and report.version == 2
    with sessions(settings).begin() as session:
        tickets = [queue.get_ticket(i, session=session) for i in ticket_ids]
        assert {t.status for t in tickets} == {TicketStatus.completed}
        assert len({t.result_version_id for t in tickets}) == 1
        version = session.get(ModelVersion, tickets[0].result_version_id)
        assert sorted(t.id for t in version.tickets) == sorted(ticket_ids)
        records = session.scalars(select(AuditRecord).where(AuditRecord.kind == "unlearning.registered")).all()
        assert sorted(r.ticket_id for r in records) == sorted(ticket_ids)
        assert {r.payload["version"] for r in records} == {2}
        assert all(r.payload["forget_count"] == len(model.forget) for r in records)
        assert {
            (
                r.payload["workers"]["score"]["processes"],
                r.payload["workers"]["unlearn"]["processes"],
                r.payload["workers"]["evaluate"]["processes"],
            )
            for r in records
        } == {(2, 2, 1)}
        assert audit.verify(session=session).ok
    assert open_store(settings).list("scratch/") == []


def test_a_ticket_whose_forget_object_is_not_qa_records_is_rejected_with_the_reason(inline_settings, published_model):
    settings = inline_settings
    model = published_model(settings)
    store = open_store(settings)
    good = store.put_bytes("inbox/bad/forget.json", json.dumps(model.forget).encode())
    ticket_id = file_ticket(settings, model, good.uri)
    # Intake checked the object; it was replaced after filing, so the pipeline is the one to refuse it.
    store.put_bytes("inbox/bad/forget.json", b'{"not": "a list of records"')

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "rejected" and "not JSON" in report.reason
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert ticket.status == TicketStatus.rejected and "not JSON" in ticket.error_reason
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
