"""How a run of the ticket flows is named: built and read in this one module.

A run's label names its first ticket (`ticket-17`, or `batch-<model slug>-17` for a batch); its id
adds 8 hex characters (`ticket-17-0123abcd`). Task runs, artifacts and scratch objects
(`scratch/<run id>/`) carry them, so the Prefect UI reads as an audit trail and the reclaimer can
tell which tickets a dead run held.
"""

from __future__ import annotations

import re
import uuid

_RUN_ID = re.compile(r"^(?:ticket|batch-.+)-(\d+)-[0-9a-f]{8}$")


def ticket_label(ticket_id: int) -> str:
    """The label of a run answering one ticket."""
    return f"ticket-{ticket_id}"


def batch_label(model: str, ticket_ids: list[int]) -> str:
    """The label of a batch run of `model`'s tickets (named after the first)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    return f"batch-{slug}-{ticket_ids[0] if ticket_ids else 'none'}"


def new_run_id(label: str) -> str:
    """A fresh id for one run under `label`."""
    return f"{label}-{uuid.uuid4().hex[:8]}"


def first_ticket(run_id: str) -> int | None:
    """The ticket a run id's label names, or None when `run_id` is not one."""
    match = _RUN_ID.match(run_id)
    return int(match.group(1)) if match else None
