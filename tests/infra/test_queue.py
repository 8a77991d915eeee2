from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from infra import filing, queue
from infra.db.base import utcnow
from infra.db.models import AuditRecord, Ticket
from infra.errors import (
    IdempotencyConflictError,
    IllegalTransitionError,
    LeaseLostError,
    TicketNotFoundError,
)
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus

S = TicketStatus
Factory = sessionmaker[Session]


def _file(db: Factory, request: TicketRequest) -> int:
    with db.begin() as session:
        return filing.file_ticket(request, session=session).id


def _count(db: Factory, table: type) -> int:
    with db.begin() as session:
        return session.scalar(select(func.count()).select_from(table))


def _transitions(db: Factory, ticket_id: int) -> list[tuple[str | None, str, str | None]]:
    with db.begin() as session:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.ticket_id == ticket_id).order_by(AuditRecord.id))
        return [(r.payload.get("from"), r.payload["to"], r.payload.get("actor")) for r in rows]


def test_filing_queues_a_ticket_and_audits_a_hash_of_the_subject(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request(hparams={"p_percent": 0.5}, due_date=date(2031, 1, 1)))
    with db.begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts, ticket.model_name, ticket.model_ref) == (
            S.queued,
            0,
            "tofu",
            "tofu",
        )
        assert ticket.hparams == {"p_percent": 0.5}
        record = session.scalar(select(AuditRecord).where(AuditRecord.ticket_id == ticket_id))
        assert record.kind == "ticket.filed"
        assert record.payload["to"] == "queued"
        assert len(record.payload["subject_sha256"]) == 64
        assert "Jane Doe" not in str(record.payload)


def test_same_idempotency_key_files_once(db: Factory, model: str, make_request: Callable[..., TicketRequest]) -> None:
    first = _file(db, make_request(idempotency_key="req-42"))
    rows, records = _count(db, Ticket), _count(db, AuditRecord)
    assert _file(db, make_request(idempotency_key="req-42")) == first
    assert (_count(db, Ticket), _count(db, AuditRecord)) == (rows, records)

    with pytest.raises(IdempotencyConflictError, match="req-42"):
        _file(db, make_request(idempotency_key="req-42", subject="John Roe"))
    assert _count(db, Ticket) == rows
    assert _file(db, make_request(idempotency_key="req-43")) != first


def test_claim_takes_deadlines_first_then_oldest(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    plain = _file(db, make_request())
    later = _file(db, make_request(due_date=date(2031, 6, 1)))
    sooner = _file(db, make_request(due_date=date(2031, 1, 1)))
    order = []
    with db.begin() as session:
        while (ticket := queue.claim("w1", 60, session=session)) is not None:
            order.append(ticket.id)
    assert order == [sooner, later, plain]
    with db.begin() as session:
        assert queue.claim("w1", 60, session=session) is None


def test_claim_filters_by_model_and_claim_batch_takes_one_models_tickets(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    from infra import registry

    with db.begin() as session:
        registry.register_model("other", session=session)
        registry.add_version("other", session=session, checkpoint_uri="s3://m/o", checkpoint_sha256="b" * 64)
    mine = [_file(db, make_request()) for _ in range(4)]
    theirs = _file(db, make_request(model="other"))
    with db.begin() as session:
        assert queue.claim("w", 60, session=session, model_name="other").id == theirs
        batch = queue.claim_batch("tofu", 3, "batch-1", 60, session=session)
        assert [t.id for t in batch] == mine[:3]
        assert {(t.status, t.lease_owner, t.attempts) for t in batch} == {(S.claimed, "batch-1", 1)}
        assert [t.id for t in queue.claim_batch("tofu", 10, "batch-2", 60, session=session)] == mine[3:]
        assert queue.claim_batch("tofu", 10, "batch-3", 60, session=session) == []


def test_claim_ticket_takes_one_named_ticket_only_while_it_is_queued(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    first, second = _file(db, make_request()), _file(db, make_request())
    with db.begin() as session:
        ticket = queue.claim_ticket(second, "flow-run-2", 60, session=session)
        assert (ticket.id, ticket.status, ticket.lease_owner, ticket.attempts) == (
            second,
            S.claimed,
            "flow-run-2",
            1,
        )
        assert queue.claim_ticket(second, "flow-run-3", 60, session=session) is None
        assert queue.claim_ticket(999, "flow-run-3", 60, session=session) is None
        assert queue.get_ticket(first, session=session).status == S.queued


def test_happy_path_and_retry_ladder_each_write_one_audit_record(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    with db.begin() as session:
        assert queue.claim("w1", 60, session=session).id == ticket_id
    path = [
        S.assembling,
        S.scoring,
        S.unlearning,
        S.evaluating,
        S.scoring,
        S.unlearning,
        S.evaluating,
    ]
    path += [S.unlearning, S.evaluating, S.registered]
    for status in path:
        with db.begin() as session:
            queue.transition(ticket_id, status, session=session, owner="w1", actor="w1")
    with db.begin() as session:
        ticket = queue.complete(ticket_id, session=session, owner="w1")
        assert (ticket.status, ticket.lease_owner, ticket.lease_expires_at) == (
            S.completed,
            None,
            None,
        )
    steps = _transitions(db, ticket_id)
    assert [to for _, to, _ in steps] == [
        "queued",
        "claimed",
        *[s.value for s in path],
        "completed",
    ]
    assert all(frm == prev_to for (frm, _, _), (_, prev_to, _) in zip(steps[1:], steps[:-1], strict=True))


@pytest.mark.parametrize(
    ("walk", "illegal"),
    [
        ([], S.registered),
        ([], S.completed),
        ([S.claimed], S.evaluating),
        ([S.claimed, S.assembling, S.scoring, S.unlearning, S.evaluating, S.registered], S.queued),
        ([S.rejected], S.queued),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(
    db: Factory,
    model: str,
    make_request: Callable[..., TicketRequest],
    walk: list[TicketStatus],
    illegal: TicketStatus,
) -> None:
    ticket_id = _file(db, make_request())
    for status in walk:
        with db.begin() as session:
            queue.transition(ticket_id, status, session=session)
    before, records = _transitions(db, ticket_id), _count(db, AuditRecord)
    with (
        pytest.raises(IllegalTransitionError, match=f"→ {illegal.value} is not allowed"),
        db.begin() as session,
    ):
        queue.transition(ticket_id, illegal, session=session)
    assert _transitions(db, ticket_id) == before
    assert _count(db, AuditRecord) == records


def test_status_and_audit_record_roll_back_together(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    records = _count(db, AuditRecord)
    with pytest.raises(RuntimeError), db.begin() as session:
        queue.claim("w1", 60, session=session)
        raise RuntimeError("worker crashed before commit")
    with db.begin() as session:
        assert queue.get_ticket(ticket_id, session=session).status == S.queued
    assert _count(db, AuditRecord) == records


def test_failures_are_retried_until_attempts_run_out(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    for attempt in (1, 2):
        with db.begin() as session:
            queue.claim("w", 60, session=session)
            ticket = queue.fail(ticket_id, "S3 timed out", session=session, max_attempts=2, owner="w")
            expected = S.queued if attempt < 2 else S.failed
            assert (ticket.status, ticket.attempts, ticket.error_reason) == (
                expected,
                attempt,
                "S3 timed out",
            )
    with db.begin() as session:
        assert queue.claim("w", 60, session=session) is None
        queue.transition(ticket_id, S.queued, session=session, reason="storage fixed", actor="staff")
    assert [to for _, to, _ in _transitions(db, ticket_id)][-3:] == ["claimed", "failed", "queued"]


def test_gate_failure_parks_the_ticket_for_review_and_staff_can_requeue(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    with db.begin() as session:
        queue.claim("w", 60, session=session)
        for status in (S.assembling, S.scoring, S.unlearning, S.evaluating):
            queue.transition(ticket_id, status, session=session)
        ticket = queue.transition(ticket_id, S.needs_review, session=session, reason="forget ROUGE-L 0.52 > 0.40")
        assert (ticket.error_reason, ticket.lease_owner) == ("forget ROUGE-L 0.52 > 0.40", None)
    with db.begin() as session:
        assert queue.transition(ticket_id, S.queued, session=session, actor="staff").status == S.queued


def test_reject_keeps_the_reason(db: Factory, model: str, make_request: Callable[..., TicketRequest]) -> None:
    ticket_id = _file(db, make_request())
    with db.begin() as session:
        queue.claim("w", 60, session=session)
        queue.transition(ticket_id, S.assembling, session=session)
        ticket = queue.reject(ticket_id, "forget file holds no QA records", session=session, owner="w")
        assert (ticket.status, ticket.error_reason) == (
            S.rejected,
            "forget file holds no QA records",
        )


def test_lapsed_lease_is_reclaimed_and_the_old_owner_is_locked_out(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    with db.begin() as session:
        queue.claim("w-dead", 60, session=session)
        queue.transition(ticket_id, S.assembling, session=session, owner="w-dead")
    with db.begin() as session:
        assert queue.reclaim_expired(session=session, max_attempts=3) == []  # still within its lease
        reclaimed = queue.reclaim_expired(session=session, max_attempts=3, now=utcnow() + timedelta(seconds=61))
        assert [(t.id, t.status, t.lease_owner) for t in reclaimed] == [(ticket_id, S.queued, None)]
    with db.begin() as session:
        assert queue.claim("w-new", 60, session=session).id == ticket_id
    with pytest.raises(LeaseLostError), db.begin() as session:
        queue.heartbeat(ticket_id, "w-dead", 60, session=session)
    with pytest.raises(LeaseLostError), db.begin() as session:
        queue.transition(ticket_id, S.assembling, session=session, owner="w-dead")
    with db.begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.lease_owner, ticket.attempts, ticket.status) == ("w-new", 2, S.claimed)
    reasons = list(_transitions(db, ticket_id))
    assert ("assembling", "failed", "queue") in reasons


def test_heartbeat_extends_the_lease(db: Factory, model: str, make_request: Callable[..., TicketRequest]) -> None:
    ticket_id = _file(db, make_request())
    start = utcnow()
    with db.begin() as session:
        queue.claim("w", 60, session=session, now=start)
    with db.begin() as session:
        queue.heartbeat(ticket_id, "w", 600, session=session, now=start + timedelta(seconds=50))
    with db.begin() as session:
        assert queue.reclaim_expired(session=session, max_attempts=3, now=start + timedelta(seconds=120)) == []
        expires = queue.get_ticket(ticket_id, session=session).lease_expires_at
        assert expires == start + timedelta(seconds=650)


def test_release_returns_the_ticket_without_spending_an_attempt(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket_id = _file(db, make_request())
    with db.begin() as session:
        queue.claim("w", 60, session=session)
        ticket = queue.release(ticket_id, "w", session=session)
        assert (ticket.status, ticket.attempts, ticket.lease_owner) == (S.queued, 0, None)
    with pytest.raises(LeaseLostError), db.begin() as session:
        queue.release(ticket_id, "w", session=session)


def test_unknown_ticket(db: Factory) -> None:
    with pytest.raises(TicketNotFoundError, match="no ticket 999"), db.begin() as session:
        queue.transition(999, S.claimed, session=session)


def test_a_race_on_one_idempotency_key_still_files_once(
    fresh_pg_url: str, make_request: Callable[..., TicketRequest]
) -> None:
    """Two processes file the same key at once: the loser waits on the unique index, then gets the winner's ticket."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from infra import registry
    from infra.db.session import make_engine, make_sessionmaker

    engine = make_engine(fresh_pg_url)
    db = make_sessionmaker(engine)
    with db.begin() as session:
        registry.register_model("tofu", session=session)
        registry.add_version("tofu", session=session, checkpoint_uri="s3://m/v1", checkpoint_sha256="a" * 64)
    request = make_request(idempotency_key="race-1")

    def file_again() -> int:
        with db.begin() as second:
            return filing.file_ticket(request, session=second).id

    # On leaving the block `first` commits, then the pool waits: the loser's insert fails, and it
    # reads the winner's ticket.
    with ThreadPoolExecutor(1) as pool, db.begin() as first:
        winner = filing.file_ticket(request, session=first).id  # inserted, not yet committed
        loser = pool.submit(file_again)
        time.sleep(0.5)
        assert not loser.done()  # blocked on the uncommitted duplicate key
    assert loser.result(timeout=30) == winner
    assert _count(db, Ticket) == 1
    engine.dispose()


def test_queued_models_lists_each_model_with_queued_tickets_once(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    with db.begin() as session:
        assert queue.queued_models(session=session) == []
    first = _file(db, make_request())
    _file(db, make_request())
    with db.begin() as session:
        assert queue.queued_models(session=session) == [model]
        queue.claim_batch(model, 10, "w", 60, session=session)
        assert queue.queued_models(session=session) == []
        assert queue.get_ticket(first, session=session).status == S.claimed
