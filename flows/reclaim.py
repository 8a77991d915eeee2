"""The scheduled reclaimer: lapsed leases back to the queue, dead runs cancelled, and a new run started
for each re-queued ticket (served by `grin serve`)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.start_run import start_processing
from tasks.reclaim import reclaim_leases


@flow(name="reclaim-leases", flow_run_name="reclaim-leases", persist_result=True)
def reclaim_expired_leases() -> dict[str, object]:
    """One sweep: every ticket whose run stopped renewing its lease is re-queued (or failed for good), and
    each re-queued one gets a process-ticket run where that deployment is served."""
    report = reclaim_leases()
    if any(report[k] for k in ("requeued", "failed", "completed")):
        get_run_logger().info("reclaimed: %s", report)
    report["started_runs"] = [name for t in report["requeued"] if (name := start_processing(t)) is not None]
    return report
