"""`grin serve` serves the reclaimer on a schedule beside the ticket flows, and the reclaimer starts a
run for each ticket it sends back to the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_the_reclaimer_is_served_every_reclaim_interval(make_settings, sqlite_url, clean_grin_environment):
    from flows.deployments import deployments

    settings = make_settings(database_url=sqlite_url, reclaim_interval_s=45, rebuild_check_interval_s=600)
    served = {d.flow_name: d for d in deployments(settings)}
    assert set(served) == {
        "file-deletion-ticket",
        "process-ticket",
        "batch-unlearning",
        "reclaim-leases",
        "rebuild-line",
    }
    (schedule,) = served["reclaim-leases"].schedules
    assert schedule.schedule.interval == timedelta(seconds=45)
    (rebuild,) = served["rebuild-line"].schedules  # every line due under its GRIN_REBUILD schedule
    assert rebuild.schedule.interval == timedelta(seconds=600) and served["rebuild-line"].parameters == {"model": "*"}


def test_the_reclaimer_starts_a_run_for_each_ticket_it_requeues(
    prefect_api, make_settings, sqlite_url, use_settings, monkeypatch
):
    from prefect.client.orchestration import get_client

    from flows.reclaim import reclaim_expired_leases
    from flows.start_run import DEPLOYMENT
    from flows.tickets import process_ticket
    from infra import filing, queue
    from infra.registry import add_version, register_model
    from infra.ticket_request import TicketRequest
    from infra.ticket_status import TicketStatus
    from tasks.resources import sessions

    settings = make_settings(database_url=sqlite_url)
    use_settings(settings, PREFECT_API_URL=prefect_api)
    with sessions(settings).begin() as session:
        register_model("m", session=session)
        add_version("m", session=session, checkpoint_uri="file:///nowhere", checkpoint_sha256="a" * 64)
        ticket = filing.file_ticket(
            TicketRequest(
                subject="S",
                model="m",
                forget_uris=["file:///nowhere/f.json"],
                requested_by="dpo@example.org",
                legal_basis="GDPR Art. 17",
            ),
            session=session,
        )
        ticket_id = ticket.id
    with sessions(settings).begin() as session:
        queue.claim_ticket(ticket_id, "flow-run:dead", 60, session=session)
        queue.get_ticket(ticket_id, session=session).lease_expires_at = datetime(2000, 1, 1, tzinfo=UTC)
    deployment_id = process_ticket.to_deployment(name=DEPLOYMENT).apply()  # as `grin serve` registers it
    try:
        report = reclaim_expired_leases()
        assert report["requeued"] == [ticket_id] and len(report["started_runs"]) == 1
        with get_client(sync_client=True) as client:
            [run] = [r for r in client.read_flow_runs() if r.deployment_id == deployment_id]
            assert run.parameters == {"ticket_id": ticket_id} and run.name == report["started_runs"][0]
            client.delete_flow_run(run.id)
        with sessions(settings).begin() as session:
            assert queue.get_ticket(ticket_id, session=session).status == TicketStatus.queued
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(deployment_id)
