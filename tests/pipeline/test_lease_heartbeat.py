"""A live run keeps its tickets' leases past their length; once it stops, the reclaimer takes them."""

from __future__ import annotations

import time

from infra import filing, queue
from infra.db.base import utcnow
from infra.reclaim import sweep
from infra.registry import add_version, register_model
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from tasks.resources import sessions
from tasks.ticket_state import keep_leases

LEASE_S = 2


def test_the_heartbeat_keeps_a_long_stage_and_lets_go_when_the_run_ends(make_settings, sqlite_url, use_settings):
    settings = make_settings(database_url=sqlite_url, lease_seconds=LEASE_S)
    use_settings(settings, GRIN_LEASE_SECONDS=str(LEASE_S))
    db = sessions(settings)
    with db.begin() as session:
        register_model("tofu", session=session)
        add_version("tofu", session=session, checkpoint_uri="s3://m/v1", checkpoint_sha256="a" * 64)
        request = TicketRequest(
            subject="J", model="tofu", forget_uris=["s3://b/inbox/x"], requested_by="a", legal_basis="b"
        )
        held, other = (
            filing.file_ticket(request.model_copy(update={"idempotency_key": k}), session=session).id
            for k in ("1", "2")
        )
    with db.begin() as session:
        queue.claim_ticket(held, "flow-run:alive", LEASE_S, session=session)

    with keep_leases([held, other], "flow-run:alive", every_s=0.3):  # `other` is not held: skipped
        time.sleep(LEASE_S + 1.5)  # a stage longer than the lease
        assert sweep(sessions=db, store=open_store(settings), max_attempts=3).tickets == []
    with db.begin() as session:
        assert queue.get_ticket(held, session=session).status == TicketStatus.claimed

    time.sleep(LEASE_S + 0.5)  # the run ended without finishing the ticket: nobody renews it
    report = sweep(sessions=db, store=open_store(settings), max_attempts=3, now=utcnow())
    assert report.requeued == [held]
