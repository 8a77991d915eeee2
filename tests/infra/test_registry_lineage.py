"""The registry's lineage of data: deletions carried down a line, origin metrics, superseded versions, and
which versions a line may be fine-tuned from."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infra import audit, filing, registry
from infra.base_versions import fine_tune_base
from infra.db.base import utcnow
from infra.errors import InvalidRequestError, UnknownModelError
from infra.ticket_request import TicketRequest

Factory = sessionmaker[Session]
ORIGIN = {"retain_rougeL": 0.99, "model_utility": 0.5, "forget_rougeL": 1.0}


def _answer(db: Factory, request: TicketRequest, parent: int, metrics: dict) -> tuple[int, int]:
    """File a ticket and register the version that answers it; (ticket id, version number)."""
    with db.begin() as session:
        ticket = filing.file_ticket(request, session=session)
        version = registry.add_version(
            "tofu",
            session=session,
            parent=registry.resolve(f"tofu@{parent}", session=session),
            checkpoint_uri=f"s3://models/tofu/v{parent + 1}",
            checkpoint_sha256=f"{parent + 1}" * 64,
            training_manifest_uri=f"s3://models/manifests/{parent + 1}.jsonl",
            training_manifest_sha256="c" * 64,
            metrics=metrics,
            ticket_ids=[ticket.id],
            deletions=[{"ticket_id": ticket.id, "forget_sha256": f"{ticket.id:064d}"}],
        )
        registry.mark_superseded(version, [ticket.id], session=session)
        return ticket.id, version.version


def test_deletions_accumulate_down_the_line_and_older_versions_hold_deleted_data(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    first, _ = _answer(db, make_request(subject="A"), 1, {"before": ORIGIN, "after": {"retain_rougeL": 0.95}})
    second, _ = _answer(db, make_request(subject="B"), 2, {"before": {"retain_rougeL": 0.95}, "after": {}})
    with db.begin() as session:
        rows = {v: registry.resolve(f"tofu@{v}", session=session) for v in (1, 2, 3)}
        assert [d["ticket_id"] for d in rows[3].lineage_deletions] == [first, second]
        assert rows[3].lineage_deletions[0]["forget_sha256"] == f"{first:064d}"
        assert rows[3].training_manifest_sha256 == "c" * 64
        assert (rows[1].holds_deleted_data_of, rows[2].holds_deleted_data_of, rows[3].holds_deleted_data_of) == (
            [first, second],
            [second],
            [],
        )
        assert rows[1].superseded_at is not None and rows[3].superseded_at is None
        # the origin's numbers: the `before` of its first unlearned descendant, wherever we stand
        assert registry.origin(rows[3]).version == 1
        assert registry.origin_metrics(rows[3]) == ORIGIN == registry.origin_metrics(rows[2])
        assert registry.origin_metrics(rows[1]) is None
        kinds = [r.kind for r in audit.records(session=session)]
        assert kinds.count("model.versions_hold_deleted_data") == 2


def test_an_alias_moves_back_to_a_version_holding_deleted_data_only_with_an_audited_override(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket, v2 = _answer(db, make_request(), 1, {})
    with db.begin() as session:
        registry.set_alias("tofu", "production", v2, session=session)
    with pytest.raises(InvalidRequestError, match="holds data deleted by tickets"), db.begin() as session:
        registry.set_alias("tofu", "production", 1, session=session)
    with db.begin() as session:
        assert registry.resolve("tofu@production", session=session).version == v2
        registry.set_alias(
            "tofu", "production", 1, session=session, actor="staff", override_reason="rollback approved in INC-7"
        )
        moved = [r for r in audit.records(session=session) if r.kind == "model.alias_moved"][-1]
        assert moved.payload["override_reason"] == "rollback approved in INC-7"
        assert moved.payload["holds_deleted_data_of"] == [ticket] and moved.payload["actor"] == "staff"
        assert audit.verify(session=session).ok


def test_a_line_is_fine_tuned_only_from_a_version_with_its_own_weights_and_no_deleted_data(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    ticket, v2 = _answer(db, make_request(), 1, {})
    with db.begin() as session:
        base = fine_tune_base("tofu@2", session=session)
        assert (base.version, [d["ticket_id"] for d in base.lineage_deletions]) == (2, [ticket])
        registry.add_version(  # a GRUN intervention over v2's weights
            "tofu",
            session=session,
            parent=base,
            checkpoint_uri="s3://models/tofu/v3",
            checkpoint_sha256="3" * 64,
            base_checkpoint_uri=base.checkpoint_uri,
            base_checkpoint_sha256=base.checkpoint_sha256,
        )
    refused = {
        "tofu@1": f"base tofu@1 holds data deleted by tickets [{ticket}]; fine-tune from the version that answers",
        "tofu@3": "base tofu@3 is a GRUN intervention over checkpoint 222222222222",
        "tofu@9": "base tofu@9: model 'tofu' has no version 9",
        "nope@1": "base nope@1: unknown model 'nope'",
    }
    for ref, message in refused.items():
        with pytest.raises((InvalidRequestError, UnknownModelError)) as caught, db.begin() as session:
            fine_tune_base(ref, session=session)
        assert str(caught.value).startswith(message), str(caught.value)
    with db.begin() as session:
        registry.resolve("tofu@2", session=session).purged_at = utcnow()
    with pytest.raises(InvalidRequestError, match="base tofu@2 was purged"), db.begin() as session:
        fine_tune_base("tofu@2", session=session)
