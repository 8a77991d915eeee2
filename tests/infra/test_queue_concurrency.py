"""Many claimer processes, one queue: every ticket is claimed exactly once.

Uses benchmarks/queue_claims.py's `run()`, so the benchmark and this test measure the same thing.
"""

from __future__ import annotations

import pytest

from benchmarks import queue_claims


@pytest.mark.parametrize(
    ("backend", "workers", "tickets"),
    [("fresh_pg_url", 8, 200), ("sqlite_url", 4, 40)],
    ids=["postgresql", "sqlite"],
)
def test_every_ticket_is_claimed_exactly_once(
    request: pytest.FixtureRequest,
    backend: str,
    workers: int,
    tickets: int,
) -> None:
    result = queue_claims.run(request.getfixturevalue(backend), tickets=tickets, workers=workers)
    assert result["errors"] == []
    assert result["exit_codes"] == [0] * workers
    assert result["claims"] == result["unique_tickets_claimed"] == tickets
    assert result["duplicates"] == 0
    assert result["still_queued"] == 0
    assert result["claim_audit_records"] == tickets  # one audit record per claim, none lost
    assert result["audit_chain_ok"]  # concurrent appends did not fork or break the chain
    assert sum(result["per_worker"].values()) == tickets
    if backend == "fresh_pg_url":
        # Row locks are skipped, not waited on, so every claimer gets a share. (SQLite hands its one
        # write lock to whoever asks first after a commit, often the same process again.)
        assert all(n > 0 for n in result["per_worker"].values()), result["per_worker"]
