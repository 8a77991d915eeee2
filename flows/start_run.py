"""Starting a `process-ticket` run for one ticket, where `grin serve` serves that deployment.

Filing starts one for a new ticket; the scheduled reclaimer starts one for each ticket it sent back
to the queue, so a ticket whose run died is answered again without anyone asking (and without
waiting for the nightly batch).
"""

from __future__ import annotations

from prefect import get_run_logger

DEPLOYMENT = "grin"
PROCESS_TICKET = f"process-ticket/{DEPLOYMENT}"


def start_processing(ticket_id: int) -> str | None:
    """Start (not wait for) a process-ticket run; its name, or None when that deployment is not served
    (the scheduled batch run answers the ticket then)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment(PROCESS_TICKET, parameters={"ticket_id": ticket_id}, timeout=0, as_subflow=False)
    except ObjectNotFound:
        get_run_logger().info(
            "ticket %d: no %s deployment is served; the batch run will answer it", ticket_id, PROCESS_TICKET
        )
        return None
    get_run_logger().info("ticket %d: started flow run %s", ticket_id, run.name)
    return run.name
