"""`grin serve` serves the reclaimer on a schedule beside the ticket flows."""

from __future__ import annotations

from datetime import timedelta


def test_the_reclaimer_is_served_every_reclaim_interval(make_settings, sqlite_url, clean_grin_environment):
    from flows.deployments import deployments

    settings = make_settings(database_url=sqlite_url, reclaim_interval_s=45)
    served = {d.flow_name: d for d in deployments(settings)}
    assert set(served) == {"file-deletion-ticket", "process-ticket", "batch-unlearning", "reclaim-leases"}
    (schedule,) = served["reclaim-leases"].schedules
    assert schedule.schedule.interval == timedelta(seconds=45)
