"""Exactly once at registration (PostgreSQL, the register task's body without a flow): a retried
registration answers with the version it wrote, a run whose parent moved under it registers nothing
and hands its ticket back, two runs racing on one model yield one version, and a run whose lease
was reclaimed writes nothing while the run that took the ticket over registers it once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from infra import queue, registry
from infra.db.models import AuditRecord, ModelVersion
from infra.errors import LeaseLostError, ParentMovedError
from infra.intake import file_request
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from policy.gate import GateDecision
from policy.round_setting import RoundSetting
from tasks.contracts import (
    CheckpointRef,
    EvalOutcome,
    MaskOutcome,
    ObjectRef,
    ParentVersion,
    RunPlan,
    Snapshot,
    UnlearnOutcome,
    WorkerStamp,
)
from tasks.register import register_version
from tasks.resources import sessions
from tasks.ticket_state import finish

S = TicketStatus
HERE = WorkerStamp(pid=1, host="test", device="cpu")
REF = ObjectRef(uri="file:///nowhere/object", sha256="0" * 64)


@pytest.fixture
def line(make_settings, fresh_pg_url, use_settings, tmp_path):
    """Model `m` at version 1 (production), and a factory of tickets claimed by an owner up to `evaluating`."""
    settings = make_settings(database_url=fresh_pg_url)
    use_settings(settings)
    with sessions(settings).begin() as session:
        registry.register_model("m", session=session)
        v1 = registry.add_version("m", session=session, checkpoint_uri="file:///nowhere/v1", checkpoint_sha256="a" * 64)
        registry.set_alias("m", registry.PRODUCTION, 1, session=session)
        v1_id = v1.id

    forget = open_store(settings).put_bytes(
        "inbox/req/forget.json", json.dumps([{"question": "Who is X?", "answer": "A made-up person."}]).encode()
    )

    def evaluated_ticket(owner: str) -> int:
        with sessions(settings).begin() as session:
            ticket = file_request(
                TicketRequest(
                    subject=f"subject of {owner}",
                    model="m",
                    forget_uris=[forget.uri],
                    requested_by="dpo@example.org",
                    legal_basis="GDPR Art. 17",
                ),
                session=session,
                settings=settings,
            )
            ticket_id = ticket.id
        with sessions(settings).begin() as session:
            queue.claim_ticket(ticket_id, owner, 600, session=session)
            for status in (S.assembling, S.scoring, S.unlearning, S.evaluating):
                queue.transition(ticket_id, status, session=session, owner=owner, actor=owner)
        return ticket_id

    return settings, v1_id, evaluated_ticket


def _register(v1_id: int, ticket_id: int, owner: str, candidate: str):
    plan = RunPlan(
        ticket_ids=[ticket_id],
        parent=ParentVersion(
            model_name="m",
            version_id=v1_id,
            version=1,
            checkpoint=CheckpointRef(uri="file:///nowhere/v1", sha256="a" * 64),
            training_manifest_uri=None,
            eval_suite_uri=None,
        ),
        setting=RoundSetting(),
        policy={},
        parent_ref="m",
    )
    snapshot = Snapshot(
        forget=REF, retain=REF, eval_suite=REF, forget_count=1, retain_count=1, keyword_count=0, eval_counts={}
    )
    mask = MaskOutcome(mask=REF, selected=1, eligible=10, stats={}, scoring_s=0.0, worker=HERE)
    unlearned = UnlearnOutcome(
        checkpoint=CheckpointRef(uri=f"file:///nowhere/{candidate}", sha256=candidate * 64),
        timings={},
        trainable_params=1,
        state_bytes={},
        worker=HERE,
    )
    measured = EvalOutcome(metrics={"forget_rougeL": 0.1}, seconds=0.0, worker=HERE)
    return register_version.fn(
        f"ticket-{ticket_id}",
        owner,
        plan,
        snapshot,
        mask,
        unlearned,
        RoundSetting(),
        measured,
        measured,
        GateDecision(passed=True, reason="test", checks=[]),
        [],
        None,
    )


def _counts(settings) -> tuple[int, int]:
    with sessions(settings).begin() as session:
        versions = session.scalar(select(func.count()).select_from(ModelVersion))
        registered = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.kind == "unlearning.registered")
        )
    return versions, registered


def _status(settings, ticket_id: int) -> tuple[S, int]:
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        return ticket.status, ticket.attempts


def test_a_retried_registration_answers_with_the_version_it_wrote(line):
    settings, v1_id, evaluated_ticket = line
    ticket_id = evaluated_ticket("run-a")
    first = _register(v1_id, ticket_id, "run-a", "b")
    again = _register(v1_id, ticket_id, "run-a", "b")  # its response was lost: the task is retried
    assert again == first and first.version == 2
    assert _counts(settings) == (2, 1)  # one new version, one audit record
    assert _status(settings, ticket_id)[0] == S.registered


def test_a_run_whose_parent_moved_registers_nothing_and_hands_its_ticket_back(line):
    settings, v1_id, evaluated_ticket = line
    a, b = evaluated_ticket("run-a"), evaluated_ticket("run-b")
    _register(v1_id, a, "run-a", "b")  # production moves to version 2
    with pytest.raises(ParentMovedError, match="now resolves to version 2"):
        _register(v1_id, b, "run-b", "c")  # planned on version 1
    assert _counts(settings) == (2, 1)
    assert _status(settings, b) == (S.evaluating, 1)  # rolled back whole
    finish("ticket-b", [b], "requeued", "run-b", "parent moved")
    assert _status(settings, b) == (S.queued, 0)  # handed back untried: the claim is not counted
    with sessions(settings).begin() as session:
        assert registry.resolve("m", session=session).version == 2  # production serves the winner


def test_two_runs_racing_on_one_model_register_one_version(line):
    settings, v1_id, evaluated_ticket = line
    tickets = {"run-a": evaluated_ticket("run-a"), "run-b": evaluated_ticket("run-b")}
    start, outcomes = threading.Barrier(2), {}

    def run(owner: str, candidate: str) -> None:
        start.wait()
        try:
            outcomes[owner] = _register(v1_id, tickets[owner], owner, candidate).version
        except ParentMovedError:
            outcomes[owner] = "lost"

    threads = [threading.Thread(target=run, args=args) for args in (("run-a", "b"), ("run-b", "c"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values(), key=str) == [2, "lost"]
    winner = next(owner for owner, outcome in outcomes.items() if outcome == 2)
    loser = next(owner for owner in outcomes if owner != winner)
    assert _counts(settings) == (2, 1)
    assert _status(settings, tickets[winner])[0] == S.registered
    assert _status(settings, tickets[loser])[0] == S.evaluating  # not marked as if its version served


def test_two_runs_of_one_ticket_yield_one_version(line):
    """Run a stalls past its lease; the reclaimer hands the ticket to run b. Both reach registration."""
    settings, v1_id, evaluated_ticket = line
    ticket_id = evaluated_ticket("run-a")
    with sessions(settings).begin() as session:
        queue.get_ticket(ticket_id, session=session, lock=True).lease_expires_at = datetime(2000, 1, 1, tzinfo=UTC)
    with sessions(settings).begin() as session:
        assert [t.id for t in queue.reclaim_expired(session=session, max_attempts=3)] == [ticket_id]
        queue.claim_ticket(ticket_id, "run-b", 600, session=session)
        for status in (S.assembling, S.scoring, S.unlearning, S.evaluating):
            queue.transition(ticket_id, status, session=session, owner="run-b", actor="run-b")

    with pytest.raises(LeaseLostError):
        _register(v1_id, ticket_id, "run-a", "b")  # the stalled run wakes up: nothing written
    assert _counts(settings) == (1, 0)
    assert _register(v1_id, ticket_id, "run-b", "c").version == 2
    assert _counts(settings) == (2, 1)
    with pytest.raises(LeaseLostError):  # nor does it pass for the takeover's answer when its candidate is alike
        _register(v1_id, ticket_id, "run-a", "c")
