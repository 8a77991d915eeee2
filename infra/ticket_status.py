"""The statuses of a ticket, named once. The moves between them are `infra.queue.TRANSITIONS`.

A module of its own (no SQLAlchemy) so the `grin` command can name them in its help text quickly.
"""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    queued = "queued"
    claimed = "claimed"
    assembling = "assembling"
    scoring = "scoring"
    unlearning = "unlearning"
    evaluating = "evaluating"
    registered = "registered"
    completed = "completed"
    rejected = "rejected"
    needs_review = "needs_review"
    failed = "failed"
