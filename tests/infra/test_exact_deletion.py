"""Exact deletion's bookkeeping (SQLite and PostgreSQL): which tickets a rebuilt version covers, which wait
for the next rebuild, and a rebuild that lost the race to a ticket answered while it trained.

The ML around it (training, the gate, verify-exact) is in tests/pipeline/test_exact_rebuild.py; here the
versions are bare rows, so the concurrency cases cost milliseconds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from infra import audit, exact_deletion, filing, registry
from infra.errors import ParentMovedError
from infra.registration import AliasRule, register_version
from infra.registry import NewVersion
from infra.ticket_request import TicketRequest

Factory = sessionmaker[Session]


def _answer(session: Session, ticket_id: int, n: int) -> int:
    """What an unlearning run registers for `ticket_id` on the serving version: the next version."""
    parent = registry.resolve("tofu", session=session)
    new = NewVersion(
        checkpoint_uri=f"s3://c/{n}",
        checkpoint_sha256=f"{n:064d}",
        parent=parent,
        ticket_ids=[ticket_id],
        deletions=[{"ticket_id": ticket_id, "forget_sha256": "f" * 64}],
    )
    return register_version("tofu", new, session=session, rule=AliasRule.if_on_parent).version.version


def _rebuild(session: Session, parent_id: int, covers: list[int], n: int) -> int:
    return exact_deletion.register_exact(
        "tofu",
        parent_id,
        checkpoint_uri=f"s3://c/{n}",
        checkpoint_sha256=f"{n:064d}",
        manifest_uri="s3://m",
        manifest_sha256="e" * 64,
        covers=covers,
        hparams={"trained_from": "scratch"},
        metrics={},
        gate={"passed": True},
        session=session,
    ).version


def test_a_rebuild_covers_the_tickets_answered_before_it_and_the_next_one_those_after(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    with db.begin() as session:
        t1, t2, t3 = (filing.file_ticket(make_request(), session=session).id for _ in range(3))
        _answer(session, t1, 2)
        _answer(session, t2, 3)
        serving = registry.resolve("tofu", session=session)
        assert exact_deletion.pending(serving) == [t1, t2]
        plan_parent = serving.id  # the rebuild takes the manifest as of its start
        # t3 is filed during the rebuild (filing touches no version) and answered after it registers
        assert _rebuild(session, plan_parent, [t1, t2], 4) == 4
        exact = registry.resolve("tofu", session=session)
        assert (exact.version, exact_deletion.is_exact(exact), exact_deletion.pending(exact)) == (4, True, [])
        assert [v.holds_deleted_data_of for v in exact.model.versions[:3]] == [[t1, t2], [t1, t2], [t1, t2]]
        assert _answer(session, t3, 5) == 5  # on top of the exact version
        newest = registry.resolve("tofu", session=session)
        assert (newest.parent.version, exact_deletion.pending(newest), sorted(exact_deletion.covered(newest))) == (
            4,
            [t3],
            [t1, t2],
        )
        # bare versions write no `unlearning.registered` record: only the exact deletion is listed
        assert [(d["kind"], d["version"]) for d in exact_deletion.deletion_kinds(t1, session=session)] == [("exact", 4)]
        kinds = [r.kind for r in audit.records(session=session, ticket_id=t1)]
        assert kinds.count(exact_deletion.COVERED) == 1 and exact_deletion.COVERED not in [
            r.kind for r in audit.records(session=session, ticket_id=t3)
        ]
        # a retried registration of the same rebuilt checkpoint answers with the version it wrote
        assert _rebuild(session, plan_parent, [t1, t2], 4) == 4
        assert audit.verify(session=session).ok


def test_a_rebuild_is_discarded_when_a_ticket_was_answered_while_it_trained(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    with db.begin() as session:
        t1, t2 = (filing.file_ticket(make_request(), session=session).id for _ in range(2))
        _answer(session, t1, 2)
        plan_parent = registry.resolve("tofu", session=session).id
        _answer(session, t2, 3)  # registered while the rebuild trained on v2's manifest
        with pytest.raises(ParentMovedError):
            _rebuild(session, plan_parent, [t1], 4)
    with db.begin() as session:  # nothing lost, nothing counted: both wait for the next rebuild
        serving = registry.resolve("tofu", session=session)
        assert (serving.version, exact_deletion.pending(serving)) == (3, [t1, t2])
