"""Fault injection on the production shape: the GPU worker (`grin worker`, its own process) is killed
with SIGKILL mid-unlearning, after its first progress checkpoint. The flow notices within the worker
dead-after time instead of the 6 h stage timeout, the ticket goes back to the queue, and a run with a
fresh worker answers it, resuming the unlearning where the dead worker's last checkpoint left it."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from infra import queue
from infra.db.models import TicketStatus
from infra.intake import file_request
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from tasks.resources import sessions

pytestmark = pytest.mark.slow
DEAD_AFTER_S = 8


def test_a_killed_worker_is_detected_and_the_ticket_answered_by_the_next_run(
        prefect_api, make_settings, fresh_pg_url, s3_storage_fields, use_settings, published_model,
        forget_objects, gpu_worker):
    settings = make_settings(database_url=fresh_pg_url, gpu_dispatch="worker",
                             gpu_worker_dead_after_s=DEAD_AFTER_S, **s3_storage_fields)
    env = use_settings(settings, GRIN_GPU_WORKER_DEAD_AFTER_S=str(DEAD_AFTER_S), PREFECT_API_URL=prefect_api,
                       GRIN_CHECKPOINT_INTERVAL_S="0")  # progress saved every epoch
    model = published_model(settings, gate_policy={"privacy_waived": True, "max_rounds": 1})
    forget_uri, _ = forget_objects(settings, model.forget)
    request = TicketRequest(subject="author 199", model=model.name, forget_uris=[forget_uri],
                            requested_by="dpo@example.org", legal_basis="GDPR Art. 17",
                            hparams={"max_epochs": 8})  # recovery is under test, not the schedule
    with sessions(settings).begin() as session:
        ticket_id = file_request(request, session=session, settings=settings).id
    worker = gpu_worker(env)

    store = open_store(settings)

    def kill_during_unlearning() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sessions(settings).begin() as session:
                unlearning = queue.get_ticket(ticket_id, session=session).status == TicketStatus.unlearning
            if unlearning and any(k.endswith("/latest.json") for k in store.list("scratch/progress/")):
                time.sleep(0.5)  # inside a later epoch
                worker.send_signal(signal.SIGKILL)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_during_unlearning, daemon=True)
    killer.start()
    from flows.tickets import process_ticket

    started = time.monotonic()
    with pytest.raises(Exception, match="its GPU worker has sent no heartbeat"):
        process_ticket(ticket_id)
    killer.join(timeout=5)
    assert worker.poll() is not None  # it was killed, and the flow gave up on it
    assert time.monotonic() - started < 300
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts) == (TicketStatus.queued, 1)
        assert "heartbeat" in ticket.error_reason

    gpu_worker(env)  # a fresh worker
    report = process_ticket(ticket_id)
    assert report.outcome in ("completed", "needs_review"), report.reason
    assert report.resumed, "the fresh worker trained from scratch instead of resuming"
    with sessions(settings).begin() as session:
        assert queue.get_ticket(ticket_id, session=session).attempts == 2
