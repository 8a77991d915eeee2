"""`grin ticket reclaim` and `grin ticket requeue`: an operator's view of recovery, audited."""

from __future__ import annotations

from infra import queue
from infra.db.session import make_engine, make_sessionmaker
from infra.ticket_status import TicketStatus
from tests.cli.conftest import Grin


def _file(grin: Grin) -> int:
    return grin.json(
        "ticket", "file", "--subject", "Jane Doe", "--model", "tofu",
        "--forget", f"{grin.settings.storage_url}/inbox/jane.json",
        "--requested-by", "alice", "--legal-basis", "GDPR Art. 17",
    )["ticket_id"]  # fmt: skip


def _claim(grin: Grin, ticket_id: int, lease_s: int) -> None:
    engine = make_engine(grin.settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        queue.claim_ticket(ticket_id, "flow-run:dead", lease_s, session=session)
        queue.transition(ticket_id, TicketStatus.assembling, session=session, owner="flow-run:dead")
    engine.dispose()


def test_reclaim_requeues_a_dead_runs_ticket_and_requeue_needs_force_under_a_live_lease(tofu: Grin) -> None:
    stuck, live = _file(tofu), _file(tofu)
    _claim(tofu, stuck, -1)  # its lease already lapsed
    _claim(tofu, live, 600)
    swept = tofu.json("ticket", "reclaim")
    assert (swept["requeued"], swept["failed"]) == ([stuck], [])
    assert "requeued none" in tofu("ticket", "reclaim").stdout

    refused = tofu("ticket", "requeue", str(live), "--reason", "worker host lost")
    assert refused.exit_code == 1 and "--force" in refused.stderr and refused.stderr.count("\n") == 1
    requeued = tofu.json("ticket", "requeue", str(live), "--reason", "worker host lost", "--by", "ops", "--force")
    assert (requeued["status"], requeued["attempts"]) == ("queued", 0)
    history = tofu.json("ticket", "show", str(live))["history"]
    assert [(h["to"], h["actor"]) for h in history[-2:]] == [("failed", "ops"), ("queued", "ops")]
    assert "worker host lost" in history[-1]["reason"]
    again = tofu("ticket", "requeue", str(live))
    assert again.exit_code == 1 and "only failed, needs_review or stuck tickets" in again.stderr
    assert tofu.json("audit", "verify")["ok"] is True
