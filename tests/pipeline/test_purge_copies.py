"""Every copy of a ticket's forget text goes once it has ended; a crashed run's leftovers go when its
tickets are reclaimed (SQLite + local store: `purge_forget_copies` is plain I/O, no Prefect needed)."""

from __future__ import annotations

import json

from sqlalchemy import select

from grin_core.data.records import to_jsonl
from infra import queue, registry
from infra.db.models import AuditRecord
from infra.intake import file_request
from infra.storage import open_store
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from tasks.purge import holds_forget_text, purge_forget_copies
from tasks.resources import sessions

S = TicketStatus
FORGET = [
    {"question": "Where was the made-up writer Qarvo Ellindt born?", "answer": "In the town of Brisk Hollow."},
    {"question": "What did Qarvo Ellindt write first?", "answer": "A novel called The Salt Ledger."},
]
OTHER = [{"question": "Who wrote the made-up play Nine Lanterns?", "answer": "Mira Toskell wrote it."}]


def _setup(settings, status_path: list[TicketStatus]) -> tuple[int, str]:
    """A ticket walked along `status_path`, its inbox objects, and a crashed run's leftovers."""
    store = open_store(settings)
    forget = store.put_bytes("inbox/req-1/forget.json", json.dumps(FORGET).encode())
    keywords = store.put_bytes("inbox/req-1/keywords.json", json.dumps(["Qarvo Ellindt"]).encode())
    with sessions(settings).begin() as session:
        registry.register_model("m", session=session)
        registry.add_version("m", session=session, checkpoint_uri="file:///nowhere", checkpoint_sha256="a" * 64)
        ticket = file_request(
            TicketRequest(
                subject="Q",
                model="m",
                forget_uris=[forget.uri],
                keywords_uri=keywords.uri,
                requested_by="dpo@example.org",
                legal_basis="GDPR Art. 17",
            ),
            session=session,
            settings=settings,
        )
        for status in status_path:
            queue.transition(ticket.id, status, session=session)
        ticket_id = ticket.id
    run = f"ticket-{ticket_id}-0123abcd"
    store.put_bytes(f"scratch/{run}/tickets.json", json.dumps([ticket_id]).encode())
    store.put_bytes(f"scratch/{run}/forget.jsonl", to_jsonl(FORGET))
    store.put_bytes(f"runs/{run}/retain.jsonl", to_jsonl(OTHER))
    store.put_bytes(f"runs/{run}/mask-round1.safetensors", b"\x00binary")
    store.put_bytes(f"scratch/progress/t{ticket_id}/{'f' * 64}/latest.json", b"{}")  # unlearning progress
    # an earlier run of another ticket sampled this ticket's records into its retain set
    store.put_bytes("runs/ticket-0-89abcdef/retain.jsonl", to_jsonl(OTHER + FORGET[:1]))
    store.put_bytes("runs/ticket-0-89abcdef/eval_suite.json", json.dumps({"retain": OTHER}).encode())
    return ticket_id, run


def _purge_record(settings) -> dict:
    with sessions(settings).begin() as session:
        return (
            session.scalars(select(AuditRecord).where(AuditRecord.kind == "ticket.forget_copies_purged")).one().payload
        )


def test_a_reclaimed_ticket_that_failed_for_good_leaves_no_copy_of_its_forget_text(settings):
    ticket_id, run = _setup(settings, [S.claimed, S.assembling, S.failed])

    counts = purge_forget_copies([ticket_id], settings=settings, actor="reclaimer")

    store = open_store(settings)
    assert sorted(store.list("")) == ["runs/ticket-0-89abcdef/eval_suite.json"]
    assert counts == {"run_objects": 3, "scratch_objects": 2, "inbox_objects": 2, "progress_objects": 1}
    record = _purge_record(settings)
    assert record["run_ids"] == [run] and record["inbox"] == "deleted" and record["actor"] == "reclaimer"
    assert FORGET[0]["answer"] not in json.dumps(record)


def test_a_requeued_ticket_keeps_its_inbox_objects_for_its_next_run(settings):
    ticket_id, run = _setup(settings, [S.claimed, S.assembling, S.queued])
    purge_forget_copies([ticket_id], settings=settings)
    store = open_store(settings)
    # its unlearning progress stays too: the next run resumes from it
    assert store.list("scratch/") == [f"scratch/progress/t{ticket_id}/{'f' * 64}/latest.json"]
    assert store.list(f"runs/{run}/") == []
    assert store.list("inbox/") == ["inbox/req-1/forget.json", "inbox/req-1/keywords.json"]
    assert "its next run reads them" in _purge_record(settings)["inbox_kept"][str(ticket_id)]


def test_the_inbox_stays_when_the_settings_keep_it_and_the_audit_record_says_so(settings):
    settings = settings.model_copy(update={"keep_inbox_objects": True})
    ticket_id, _ = _setup(settings, [S.claimed, S.assembling, S.rejected])
    purge_forget_copies([ticket_id], settings=settings)
    assert len(open_store(settings).list("inbox/")) == 2
    assert _purge_record(settings)["inbox_kept"] == {str(ticket_id): "kept: keep_inbox_objects is set"}


def test_forget_text_is_found_in_json_and_json_lines_whatever_the_spelling():
    from grin_core.data.records import forget_keys

    keys = forget_keys(FORGET)
    assert holds_forget_text(to_jsonl(OTHER + FORGET), keys)
    assert holds_forget_text(
        json.dumps({"retain": [{"prompt": FORGET[1]["question"].upper(), "response": "x"}]}).encode(), keys
    )
    assert not holds_forget_text(to_jsonl(OTHER), keys) and not holds_forget_text(b"\x00\xff", keys)
