"""Filing a deletion ticket from the Prefect UI: the run form is this flow's typed parameters."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.start_run import start_processing
from infra import intake
from infra.settings import get_settings
from infra.ticket_request import TicketRequest
from tasks.resources import sessions


@flow(name="file-deletion-ticket", flow_run_name="file-{request.requested_by}", persist_result=True)
def file_deletion_ticket(request: TicketRequest, process_now: bool = True) -> dict:
    """Check the request against the registry and the stores, then queue it (idempotent by key).

    With `process_now`, a `process-ticket` run is started for it when that deployment is served;
    otherwise the scheduled batch run answers it.
    """
    settings = get_settings()
    with sessions(settings).begin() as session:
        ticket = intake.file_request(request, session=session, settings=settings, actor=request.requested_by)
        ticket_id, status = ticket.id, ticket.status.value
    get_run_logger().info("ticket %d filed for %s (%s)", ticket_id, request.model, status)
    create_markdown_artifact(
        key=f"ticket-{ticket_id}-filed",
        markdown=f"# Ticket {ticket_id} filed\n\n- model: `{request.model}`\n- method: {request.method.value}\n"
        f"- forget objects: {len(request.forget_uris)}\n- requested by: {request.requested_by}\n"
        f"- status: {status}\n",
        description=f"ticket {ticket_id}: filed",
    )
    if process_now and status == "queued":
        start_processing(ticket_id)
    return {"ticket_id": ticket_id, "status": status}
