"""Deployments and schedules, declared in one place and served by `grin serve`.

- `file-deletion-ticket/grin`: the UI's run form (typed TicketRequest parameters) for filing tickets;
- `process-ticket/grin`: answers one ticket (started by filing, or by hand);
- `batch-unlearning/grin`: on the `GRIN_BATCH_CRON` schedule, folds every model's queued tickets
  into one run per model;
- `reclaim-leases/grin`: every `GRIN_RECLAIM_INTERVAL_S` seconds, sends tickets whose run died back
  to the queue (or to `failed` after `GRIN_MAX_ATTEMPTS`) and purges their scratch copies;
- `rebuild-line/grin`: every `GRIN_REBUILD_CHECK_INTERVAL_S` seconds, rebuilds each line that its
  `GRIN_REBUILD` schedule says is due (exact deletion of the tickets answered since its last rebuild).
"""

from __future__ import annotations

from prefect import serve

from flows.file_ticket import file_deletion_ticket
from flows.rebuild_line import rebuild_line
from flows.reclaim import reclaim_expired_leases
from flows.start_run import DEPLOYMENT
from flows.tickets import batch_unlearning, process_ticket
from infra.settings import Settings, get_settings


def deployments(settings: Settings) -> list:
    return [
        file_deletion_ticket.to_deployment(
            name=DEPLOYMENT,
            tags=["grin", "intake"],
            description="File a deletion request: forget what a model learned about a subject.",
        ),
        process_ticket.to_deployment(name=DEPLOYMENT, tags=["grin"], description="Answer one queued ticket."),
        batch_unlearning.to_deployment(
            name=DEPLOYMENT,
            tags=["grin", "batch"],
            cron=settings.batch_cron,
            parameters={"model": "*"},
            description="Answer every queued ticket, one unlearning run per model.",
        ),
        reclaim_expired_leases.to_deployment(
            name=DEPLOYMENT,
            tags=["grin", "recovery"],
            interval=settings.reclaim_interval_s,
            description="Re-queue tickets whose run died (lapsed lease); purge what it left in scratch.",
        ),
        rebuild_line.to_deployment(
            name=DEPLOYMENT,
            tags=["grin", "exact-deletion"],
            interval=settings.rebuild_check_interval_s,
            parameters={"model": "*"},
            description="Rebuild every line due under its schedule: exact deletion of the tickets answered since.",
        ),
    ]


def serve_all(settings: Settings | None = None) -> None:
    serve(*deployments(settings or get_settings()))
