"""The ticket flows: what happens to a deletion request from claim to completion.

The allowed status changes are written once, in the table `infra.queue.TRANSITIONS`; the order a
run takes them in is `flows.ticket_run.TicketRun` (its `stage` and `finish` calls):

    queued → claimed → assembling → scoring → unlearning → evaluating → registered → completed
                          │        └───(grun)────┘            │  ↑ retry ladder (larger p → scoring,
                          └→ rejected (bad input)             │     more epochs → unlearning)
                                                              └→ needs_review (gate failed at the top)
    any stage → failed (infrastructure error; re-queued while attempts remain)
    evaluating → queued (lost the race to register: the version the tickets name moved; re-planned)

`process_ticket` answers one ticket; `batch_unlearning` folds every queued ticket of one model into
one run (one model version, one audit record per ticket). Both claim, keep the leases alive, and
hand the tickets to a `TicketRun`.
"""

from __future__ import annotations

import uuid

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.ticket_run import TicketRun
from infra.run_ids import batch_label, ticket_label
from tasks.contracts import RunReport
from tasks.reclaim import reclaim_leases
from tasks.ticket_state import claim_batch, claim_ticket, keep_leases, queued_models

REPLANS = 2  # how often one process-ticket run re-plans a ticket whose parent moved under it


def _owner() -> str:
    return f"flow-run:{flow_run.id}" if flow_run.id else f"local:{uuid.uuid4().hex[:12]}"


@flow(name="process-ticket", flow_run_name="ticket-{ticket_id}", persist_result=True)
def process_ticket(ticket_id: int) -> RunReport:
    """Answer one queued deletion ticket.

    A run that lost the race to register (another run moved the version the ticket names) hands the
    ticket back and plans it again on the new version, up to `REPLANS` times; then the schedule has it.
    """
    owner = _owner()
    label = ticket_label(ticket_id)
    reclaim_leases()  # a ticket whose earlier run died is queued again before this run claims
    report = None
    for _ in range(1 + REPLANS):
        if not claim_ticket(ticket_id, owner):
            get_run_logger().info("%s is not queued; nothing to do", label)
            return report or RunReport(
                label=label, ticket_ids=[ticket_id], outcome="nothing_to_do", reason="the ticket is not queued"
            )
        with keep_leases([ticket_id], owner):
            report = TicketRun(label, [ticket_id], owner).answer()
        if report.outcome != "requeued":
            break
    return report


@flow(name="batch-unlearning", flow_run_name="batch-{model}", persist_result=True)
def batch_unlearning(model: str = "*", max_tickets: int = 20) -> list[RunReport]:
    """Answer the queued tickets of one model (up to `max_tickets`) with one unlearning run.

    `model="*"` (the schedule's setting) runs one such batch per model that has queued tickets.
    """
    if model == "*":
        return [report for name in queued_models() for report in batch_unlearning(name, max_tickets)]
    owner = _owner()
    reclaim_leases()
    ticket_ids = claim_batch(model, max_tickets, owner)
    label = batch_label(model, ticket_ids)
    if not ticket_ids:
        get_run_logger().info("no queued tickets for %s", model)
        return [RunReport(label=label, ticket_ids=[], outcome="nothing_to_do", model=model, reason="no queued tickets")]
    with keep_leases(ticket_ids, owner):
        return [TicketRun(label, ticket_ids, owner).answer()]
