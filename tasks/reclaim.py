"""The reclaimer as a Prefect task: a sweep (`infra.reclaim`) plus cancelling the dead runs' flow runs."""

from __future__ import annotations

import logging

from prefect import task

from infra.reclaim import SweepReport, sweep
from infra.settings import get_settings
from tasks.purge import purge_forget_copies
from tasks.resources import object_store, sessions
from tasks.ticket_state import publish_chain_head

log = logging.getLogger(__name__)


def _purge_crashed_copies(ticket_ids: list[int]) -> None:
    """Every copy of the reclaimed tickets' forget text their dead run made (tasks.purge)."""
    try:
        purge_forget_copies(ticket_ids, run_ids=None, actor="reclaimer")
    except Exception as exc:  # noqa: BLE001 - recovery goes on; the scratch purge by name follows
        log.warning("purge of reclaimed tickets' forget copies failed: %s", f"{type(exc).__name__}: {exc}"[:300])


def sweep_now() -> SweepReport:
    """One sweep with this process's settings (also used outside any flow: the worker at start)."""
    settings = get_settings()
    return sweep(
        sessions=sessions(settings),
        store=object_store(settings),
        max_attempts=settings.max_attempts,
        purge_copies=_purge_crashed_copies,
    )


def cancel_flow_runs(flow_run_ids: list[str], current: str | None = None) -> int:
    """Mark the reclaimed tickets' flow runs Cancelled (a dead process cannot); best effort."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Cancelled

    if not PREFECT_API_URL.value():
        return 0
    cancelled = 0
    with get_client(sync_client=True) as client:
        for run_id in sorted(set(flow_run_ids) - {current}):
            try:
                if client.read_flow_run(run_id).state.is_final():
                    continue
                client.set_flow_run_state(run_id, Cancelled(message="its tickets were reclaimed"), force=True)
                cancelled += 1
            except Exception as exc:  # noqa: BLE001 - a run we cannot cancel must not stop recovery
                log.warning("could not cancel flow run %s: %s", run_id, exc)
    return cancelled


@task(name="reclaim-leases", task_run_name="reclaim-leases")
def reclaim_leases() -> dict[str, object]:
    """Sweep lapsed leases back to the queue and cancel the flow runs that held them."""
    from prefect.runtime import flow_run

    report = sweep_now()
    if report.tickets:
        publish_chain_head()
    current = str(flow_run.id) if flow_run.id else None
    cancelled = cancel_flow_runs(list(report.flow_runs.values()), current) if report.flow_runs else 0
    return {
        "requeued": report.requeued,
        "failed": report.failed,
        "completed": report.completed,
        "scratch_objects": report.scratch_objects,
        "cancelled_flow_runs": cancelled,
    }
