"""The scheduled reclaimer: lapsed leases back to the queue, dead runs cancelled (served by `grin serve`)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from tasks.reclaim import reclaim_leases


@flow(name="reclaim-leases", flow_run_name="reclaim-leases", persist_result=True)
def reclaim_expired_leases() -> dict[str, object]:
    """One sweep: every ticket whose run stopped renewing its lease is re-queued (or failed for good)."""
    report = reclaim_leases()
    if any(report[k] for k in ("requeued", "failed", "completed")):
        get_run_logger().info("reclaimed: %s", report)
    return report
