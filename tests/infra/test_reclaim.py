"""The reclaimer: a ticket whose run died goes back to the queue (or fails for good), audited, and its
scratch copies are purged; an operator can requeue a ticket."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra import audit, filing, queue
from infra.db.base import utcnow
from infra.db.models import AuditRecord
from infra.errors import IllegalTransitionError
from infra.reclaim import sweep
from infra.storage import LocalStore
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus

S = TicketStatus
Factory = sessionmaker[Session]
LATER = timedelta(seconds=61)


def _claimed(db: Factory, request: TicketRequest, owner: str, *stages: TicketStatus) -> int:
    with db.begin() as session:
        ticket_id = filing.file_ticket(request, session=session).id
    with db.begin() as session:
        queue.claim_ticket(ticket_id, owner, 60, session=session)
        for stage in stages:
            queue.transition(ticket_id, stage, session=session, owner=owner)
    return ticket_id


def _moves(db: Factory, ticket_id: int) -> list[tuple[str, str, str]]:
    with db.begin() as session:
        return [
            (r.payload.get("from"), r.payload["to"], r.payload.get("actor"))
            for r in audit.records(session=session, ticket_id=ticket_id)
            if r.kind == "ticket.transition"
        ]


def test_a_dead_runs_ticket_is_requeued_then_failed_for_good_after_max_attempts(
    db: Factory, model: str, make_request: Callable[..., TicketRequest], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "objects")
    ticket_id = _claimed(db, make_request(), "flow-run:dead", S.assembling, S.scoring, S.unlearning)
    store.put_bytes(f"scratch/ticket-{ticket_id}-0123abcd/forget.jsonl", b"{}\n")
    store.put_bytes("scratch/ticket-999-0123abcd/forget.jsonl", b"{}\n")  # another ticket's run
    for sha, run in (("c" * 64, f"ticket-{ticket_id}-0123abcd"), ("d" * 64, "ticket-999-0123abcd")):
        store.put_bytes(f"checkpoints/{sha}/model.safetensors", b"w")  # candidates of the two runs
        store.put_bytes(f"checkpoints/{sha}/card.json", json.dumps({"run": run}).encode())

    assert sweep(sessions=db, store=store, max_attempts=2).tickets == []  # lease still live
    report = sweep(sessions=db, store=store, max_attempts=2, now=utcnow() + LATER)
    assert (report.requeued, report.failed, report.scratch_objects) == ([ticket_id], [], 1)
    assert store.list("scratch/") == ["scratch/ticket-999-0123abcd/forget.jsonl"]
    assert report.candidate_objects == 2  # the dead run's candidate; the other run's stays
    assert {k.split("/")[1] for k in store.list("checkpoints/")} == {"d" * 64}
    assert _moves(db, ticket_id)[-2:] == [("unlearning", "failed", "queue"), ("failed", "queued", "queue")]
    with db.begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts, ticket.lease_owner) == (S.queued, 1, None)
        purged = session.scalars(select(AuditRecord).where(AuditRecord.kind == "run.scratch_purged")).all()
        assert [r.payload["ticket_ids"] for r in purged] == [[ticket_id]]

    with db.begin() as session:  # the second attempt dies too
        queue.claim_ticket(ticket_id, "flow-run:dead-again", 60, session=session)
    report = sweep(sessions=db, store=store, max_attempts=2, now=utcnow() + LATER)
    assert (report.requeued, report.failed) == ([], [ticket_id])
    with db.begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts) == (S.failed, 2)
        assert ticket.error_reason == "lease of flow-run:dead-again expired"
        assert audit.verify(session=session).ok


def test_a_ticket_registered_by_a_run_that_died_is_completed(
    db: Factory, model: str, make_request: Callable[..., TicketRequest], tmp_path: Path
) -> None:
    stages = (S.assembling, S.scoring, S.unlearning, S.evaluating, S.registered)
    ticket_id = _claimed(db, make_request(), "flow-run:dead", *stages)
    report = sweep(sessions=db, store=LocalStore(tmp_path), max_attempts=3, now=utcnow() + LATER)
    assert report.completed == [ticket_id]
    assert _moves(db, ticket_id)[-1] == ("registered", "completed", "queue")


def test_a_live_lease_survives_the_sweep_and_the_heartbeat_keeps_it(
    db: Factory, model: str, make_request: Callable[..., TicketRequest], tmp_path: Path
) -> None:
    ticket_id = _claimed(db, make_request(), "flow-run:alive", S.assembling)
    with db.begin() as session:
        queue.heartbeat(ticket_id, "flow-run:alive", 600, session=session)
    assert sweep(sessions=db, store=LocalStore(tmp_path), max_attempts=3, now=utcnow() + LATER).tickets == []


def test_an_operator_requeues_with_fresh_attempts_and_a_live_lease_needs_force(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _claimed(db, make_request(), "flow-run:slow", S.assembling)
    with pytest.raises(IllegalTransitionError, match="live lease"), db.begin() as session:
        queue.requeue(ticket_id, session=session, actor="ops", reason="stuck")
    with db.begin() as session:
        ticket = queue.requeue(ticket_id, session=session, actor="ops", reason="stuck", force=True)
        assert (ticket.status, ticket.attempts, ticket.lease_owner) == (S.queued, 0, None)
    assert _moves(db, ticket_id)[-2:] == [("assembling", "failed", "ops"), ("failed", "queued", "ops")]
    with pytest.raises(IllegalTransitionError, match="only failed"), db.begin() as session:
        queue.requeue(ticket_id, session=session, actor="ops", reason="again")


def test_a_candidate_uploaded_after_its_run_was_swept_goes_with_the_next_sweep(
    db: Factory, model: str, make_request: Callable[..., TicketRequest], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "objects")
    live = _claimed(db, make_request(), "flow-run:alive", S.assembling, S.scoring, S.unlearning)
    ended = _claimed(db, make_request(idempotency_key="other"), "flow-run:gone", S.assembling)
    with db.begin() as session:
        queue.reject(ended, "test", session=session)

    def candidate(sha: str, tickets: list[int]) -> None:
        card = {"run": "ticket-0-0123abcd", "deletions": [{"ticket_id": t, "forget_sha256": "f" * 64} for t in tickets]}
        store.put_bytes(f"checkpoints/{sha}/card.json", json.dumps(card).encode())
        store.put_bytes(f"checkpoints/{sha}/model.safetensors", b"w")

    candidate("a" * 64, [live])  # its run still holds the ticket: may yet be registered
    candidate("b" * 64, [ended])  # a late upload of a run whose ticket has ended
    store.put_bytes(f"checkpoints/{'c' * 64}/card.json", b'{"method": "imported"}')  # a first version on its way in

    report = sweep(sessions=db, store=store, max_attempts=2)
    assert report.candidate_objects == 2
    assert sorted({k.split("/")[1][0] for k in store.list("checkpoints/")}) == ["a", "c"]


def test_run_ids_are_built_and_read_in_one_module() -> None:
    from grin_core.models.checkpoint import CARD_DATA
    from infra import reclaim
    from infra.run_ids import batch_label, first_ticket, new_run_id, ticket_label

    assert first_ticket(new_run_id(ticket_label(17))) == 17
    assert first_ticket(new_run_id(batch_label("TOFU demo", [4, 5]))) == 4
    assert first_ticket("ticket-17") is None and first_ticket("other-17-0123abcd") is None
    assert reclaim.CARD_DATA == CARD_DATA  # the file grin_core writes is the one the reclaimer reads
