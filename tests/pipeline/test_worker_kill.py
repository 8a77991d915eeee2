"""Fault injection on the production shape: the GPU worker (`grin worker`, its own process) is killed
with SIGKILL in a stage. The flow notices within the worker dead-after time instead of the 6 h stage
timeout, the ticket goes back to the queue, and a run with a fresh worker answers it; killed
mid-unlearning (after its first progress checkpoint), the fresh worker resumes from it.

Points: `unlearning` (default), `scoring`, `upload` (the worker dies with the candidate half
uploaded) and `evaluating`; `GRIN_TEST_WORKER_KILL_POINTS=all` (or a list) tries more. Registration
runs in the flow, not the worker: test_kill_recovery.py kills there."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from infra import queue
from infra.storage import open_store
from infra.ticket_status import TicketStatus
from tasks.resources import sessions
from tests.fixtures.pipeline import LENIENT_GATE, file_ticket, progress_saved

pytestmark = pytest.mark.slow
DEAD_AFTER_S = 8
# point -> (status the worker dies in, failpoint armed in the worker or None: killed from here)
KILLS = {
    "scoring": ("scoring", None),
    "unlearning": ("unlearning", None),
    "upload": ("unlearning", "checkpoint.upload"),
    "evaluating": ("evaluating", None),
}
_ASKED = os.environ.get("GRIN_TEST_WORKER_KILL_POINTS", "unlearning")
POINTS = list(KILLS) if _ASKED == "all" else _ASKED.split(",")


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_worker_is_detected_and_the_ticket_answered_by_the_next_run(
    point,
    prefect_api,
    make_settings,
    fresh_pg_url,
    s3_storage_fields,
    use_settings,
    published_model,
    forget_objects,
    gpu_worker,
):
    settings = make_settings(
        database_url=fresh_pg_url, gpu_dispatch="worker", gpu_worker_dead_after_s=DEAD_AFTER_S, **s3_storage_fields
    )
    env = use_settings(
        settings,
        GRIN_GPU_WORKER_DEAD_AFTER_S=str(DEAD_AFTER_S),
        PREFECT_API_URL=prefect_api,
        GRIN_CHECKPOINT_INTERVAL_S="0",
    )  # progress saved every epoch
    model = published_model(settings, gate_policy={**LENIENT_GATE, "max_rounds": 1})
    forget_uri, _ = forget_objects(settings, model.forget)
    ticket_id = file_ticket(
        settings, model, forget_uri, hparams={"max_epochs": 8, "retain_batch_size": 8}
    )  # recovery is under test, not the schedule
    status, armed = KILLS[point]
    worker = gpu_worker({**env, "GRIN_FAILPOINTS": armed or ""})
    store = open_store(settings)

    def kill_in_the_stage() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sessions(settings).begin() as session:
                there = queue.get_ticket(ticket_id, session=session).status == TicketStatus(status)
            if there and (point != "unlearning" or progress_saved(store)):
                time.sleep(0.5)  # inside the stage (for unlearning: inside a later epoch)
                worker.send_signal(signal.SIGKILL)
                return
            time.sleep(0.2)

    if not armed:
        killer = threading.Thread(target=kill_in_the_stage, daemon=True)
        killer.start()
    from flows.tickets import process_ticket

    started = time.monotonic()
    with pytest.raises(Exception, match="its GPU worker has sent no heartbeat"):
        process_ticket(ticket_id)
    assert worker.poll() == -signal.SIGKILL  # it was killed, and the flow gave up on it
    assert time.monotonic() - started < 300
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status, ticket.attempts) == (TicketStatus.queued, 1)
        assert "heartbeat" in ticket.error_reason

    gpu_worker(env)  # a fresh worker
    report = process_ticket(ticket_id)
    assert report.outcome == "completed", report.reason
    if point in ("unlearning", "upload"):
        assert report.resumed, "the fresh worker trained from scratch instead of resuming"
    with sessions(settings).begin() as session:
        assert queue.get_ticket(ticket_id, session=session).attempts == 2
    assert store.list("scratch/") == []
    print(f"worker kill {point}: {report.outcome} after the retry; resumed from step {report.resumed or '-'}")
