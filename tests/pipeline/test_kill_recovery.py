"""Fault injection: `grin ticket process` is killed (SIGKILL) at a point, and the next run completes
the ticket with no hand-run command (PostgreSQL, moto S3, a Prefect API, ML stages in-process).

Points: `scoring`, `unlearning` (mid-epoch, after a progress checkpoint: the next run resumes
from it), `upload` (the candidate half uploaded), `registering` (evaluated, not registered) and
`evaluating`. The default run tries `unlearning`; `GRIN_TEST_KILL_POINTS=all` (or a list) tries
more. Figures (resumed step, versions, orphans, per point) are printed with `-s`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from sqlalchemy import select

from grin_core.data.records import forget_keys
from infra import audit, queue
from infra.audit_heads import latest_published
from infra.db.models import ModelVersion
from infra.storage import open_store
from infra.ticket_status import TicketStatus
from tasks.purge import holds_forget_text
from tasks.resources import sessions
from tests.fixtures.pipeline import LENIENT_GATE, VENV_BIN, file_ticket, progress_saved

pytestmark = pytest.mark.slow
LEASE_S = 4
# point -> (status the ticket is left in, failpoint armed in the killed process or None: killed from here)
KILLS = {
    "scoring": ("scoring", None),
    "unlearning": ("unlearning", None),
    "upload": ("unlearning", "checkpoint.upload"),
    "registering": ("evaluating", "register.before"),
    "evaluating": ("evaluating", None),
}
_ASKED = os.environ.get("GRIN_TEST_KILL_POINTS", "unlearning")
POINTS = list(KILLS) if _ASKED == "all" else _ASKED.split(",")


def _reached(settings, store, ticket_id: int, point: str) -> bool:
    if _status(settings, ticket_id)[0] != TicketStatus(KILLS[point][0]):
        return False
    return point != "unlearning" or progress_saved(store)


def _status(settings, ticket_id: int) -> tuple[TicketStatus, str | None]:
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        return ticket.status, ticket.flow_run_id


@pytest.mark.parametrize("point", POINTS)
def test_a_killed_run_is_recovered_by_the_next_one(
    point,
    prefect_api,
    make_settings,
    fresh_pg_url,
    s3_storage_fields,
    use_settings,
    published_model,
    forget_objects,
    tmp_path,
):
    settings = make_settings(
        database_url=fresh_pg_url, gpu_dispatch="inline", lease_seconds=LEASE_S, **s3_storage_fields
    )
    # progress saved every epoch, so a kill mid-unlearning has a checkpoint to resume from
    env = use_settings(
        settings, GRIN_LEASE_SECONDS=str(LEASE_S), PREFECT_API_URL=prefect_api, GRIN_CHECKPOINT_INTERVAL_S="0"
    )
    # One round, and a gate this short run passes: its verdict is not under test here, recovery is
    # (a registration must happen for the `registering` point and the one-version check to mean anything).
    model = published_model(settings, gate_policy={**LENIENT_GATE, "max_rounds": 1})
    theirs = set(open_store(settings).list(""))  # the line's own data (its training set), not the service's copies
    forget_uri, _ = forget_objects(settings, model.forget)
    # A short privacy-schedule budget: recovery is under test here, not how far the schedule gets.
    ticket_id = file_ticket(settings, model, forget_uri, hparams={"max_epochs": 8, "retain_batch_size": 8})

    status, armed = KILLS[point]
    store = open_store(settings)
    log = tmp_path / "killed.log"
    process = subprocess.Popen(
        [str(VENV_BIN / "grin"), "ticket", "process", str(ticket_id)],
        env={**os.environ, **env, "GRIN_FAILPOINTS": armed or ""},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if armed:
        assert process.wait(timeout=300) == -signal.SIGKILL, log.read_text()[-2000:]
    else:
        deadline = time.monotonic() + 300
        while not _reached(settings, store, ticket_id, point):
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.2)
        time.sleep(0.5)  # inside the stage (for unlearning: inside an epoch after a checkpoint)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    killed_status, killed_run = _status(settings, ticket_id)
    assert killed_status == TicketStatus(status)
    time.sleep(LEASE_S + 1)  # the dead run's lease lapses

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "completed", report.reason
    if point == "unlearning":
        assert report.resumed, "the next run trained from scratch instead of resuming"
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert (ticket.status.value, ticket.attempts) == (report.outcome, 2)
        versions = session.scalars(select(ModelVersion)).all()
        answering = [v.version for v in versions if ticket_id in {t.id for t in v.tickets}]
        assert answering == [2]  # one version answers it, never a duplicate
        referenced = {v.checkpoint_uri for v in versions}
        assert audit.verify(session=session).ok
        published = latest_published(store=store)  # the chain head went to the store when it ended
        assert published is not None and audit.verify(session=session, expect=published).ok
    assert store.list("scratch/") == []  # forget snapshots and unlearning progress included
    orphans = sorted(
        {k.rsplit("/", 1)[0] for k in store.list("checkpoints/")} - {u.split("/grin/", 1)[1] for u in referenced}
    )
    keys = forget_keys(model.forget)
    holding = [
        k
        for k in set(store.list("")) - theirs
        if k.endswith((".json", ".jsonl")) and holds_forget_text(store.get_bytes(k), keys)
    ]
    print(
        f"kill point {point}: {report.outcome} after reclaim; resumed from step {report.resumed or '-'}; "
        f"versions answering it: {len(answering)}; orphan checkpoints: {len(orphans)}; "
        f"objects holding forget text: {len(holding)}"
    )
    assert orphans == []  # a candidate the killed run uploaded went with its lease
    assert holding == []

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(killed_run).state.is_cancelled()  # not left RUNNING
