"""Fault injection: `grin ticket process` is killed (SIGKILL) at a stage, and the next run completes
the ticket with no hand-run command (PostgreSQL, moto S3, a Prefect API, ML stages in-process).

The default run kills during evaluation (after the candidate's upload, before registration: the
hardest point); `GRIN_TEST_KILL_POINTS=scoring,unlearning,evaluating` tries more. Figures (orphan
objects outside scratch, per point) are printed with `-s`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import select

from infra import audit, queue
from infra.audit_heads import latest_published
from infra.db.models import ModelVersion, TicketStatus
from infra.intake import file_request
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from tasks.resources import sessions
from tests.fixtures.pipeline import VENV_BIN

pytestmark = pytest.mark.slow
LEASE_S = 4
POINTS = os.environ.get("GRIN_TEST_KILL_POINTS", "evaluating").split(",")


def _status(settings, ticket_id: int) -> tuple[TicketStatus, str | None]:
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        return ticket.status, ticket.flow_run_id


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_run_is_recovered_by_the_next_one(
        point, prefect_api, make_settings, fresh_pg_url, s3_storage_fields, use_settings,
        published_model, forget_objects, tmp_path):
    settings = make_settings(database_url=fresh_pg_url, gpu_dispatch="inline", lease_seconds=LEASE_S,
                             **s3_storage_fields)
    env = use_settings(settings, GRIN_LEASE_SECONDS=str(LEASE_S), PREFECT_API_URL=prefect_api)
    # One round: the gate's verdict on this tiny model is not what is tested here, recovery is.
    model = published_model(settings, gate_policy={"privacy_waived": True, "max_rounds": 1})
    forget_uri, _ = forget_objects(settings, model.forget)
    # A short privacy-schedule budget: recovery is under test here, not how far the schedule gets.
    request = TicketRequest(subject="author 199", model=model.name, forget_uris=[forget_uri],
                            requested_by="dpo@example.org", legal_basis="GDPR Art. 17",
                            hparams={"max_epochs": 8})
    with sessions(settings).begin() as session:
        ticket_id = file_request(request, session=session, settings=settings).id

    log = tmp_path / "killed.log"
    process = subprocess.Popen([str(VENV_BIN / "grin"), "ticket", "process", str(ticket_id)],
                               env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while _status(settings, ticket_id)[0] != TicketStatus(point):
        assert process.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.2)
    time.sleep(1.0)  # inside the stage
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    killed_status, killed_run = _status(settings, ticket_id)
    assert killed_status == TicketStatus(point)
    time.sleep(LEASE_S + 1)  # the dead run's lease lapses

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    # Answered by the next run: registered (completed) or parked by the gate (needs_review).
    assert report.outcome in ("completed", "needs_review"), report.reason
    store = open_store(settings)
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status.value, ticket.attempts) == (report.outcome, 2)
        versions = session.scalars(select(ModelVersion)).all()
        answering = [v.version for v in versions if ticket_id in {t.id for t in v.tickets}]
        assert answering == ([2] if report.outcome == "completed" else [])  # never a duplicate
        referenced = {v.checkpoint_uri for v in versions}
        assert audit.verify(session=session).ok
        published = latest_published(store=store)  # the chain head went to the store when it ended
        assert published is not None and audit.verify(session=session, expect=published).ok
    assert store.list("scratch/") == []
    orphans = sorted({k.rsplit("/", 1)[0] for k in store.list("checkpoints/")} - {u.split("/grin/", 1)[1] for u in referenced})
    print(f"kill point {point}: {report.outcome} after reclaim; orphan candidate checkpoints outside scratch: {len(orphans)}")
    assert orphans == []  # a candidate the killed run uploaded went with its lease

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(killed_run).state.is_cancelled()  # not left RUNNING
