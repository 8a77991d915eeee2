"""When a line is rebuilt for exact deletion: every N days, or once N tickets wait, whichever comes first.

GRIN's approximate deletion answers a ticket within hours; a rebuild (training the line's recipe on its
lineage manifest) costs a full training run, so it runs on a schedule and covers every ticket answered
since the last one. Pure: counts and dates in, a reason (or None) out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field


class RebuildPolicy(BaseModel):
    """A line's rebuild schedule; a field left None never triggers a rebuild on its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_days: float | None = Field(
        None,
        gt=0,
        description="Rebuild once the last rebuild (or the line's first version) is this many days old "
        "and a ticket waits.",
    )
    after_deletions: int | None = Field(
        None, ge=1, description="Rebuild once this many answered tickets wait for exact deletion."
    )


def rebuild_due(policy: RebuildPolicy, waiting: int, since: datetime, now: datetime) -> str | None:
    """Why the line is due for a rebuild now, or None. `waiting`: tickets answered approximately and not
    yet covered; `since`: when the last rebuild (or the line's first version) was registered."""
    if waiting == 0:
        return None
    if policy.after_deletions is not None and waiting >= policy.after_deletions:
        return f"{waiting} tickets wait for exact deletion (policy: after {policy.after_deletions})"
    if policy.every_days is not None and now - since >= timedelta(days=policy.every_days):
        return (
            f"{waiting} tickets wait and the last rebuild is {(now - since).days} days old "
            f"(policy: every {policy.every_days:g} days)"
        )
    return None
