from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra import filing, queue, registry
from infra.db.models import AuditRecord
from infra.errors import InvalidRequestError, TicketNotFoundError, UnknownModelError
from infra.ticket_request import TicketRequest
from policy.gate_policy import GatePolicy

Factory = sessionmaker[Session]


def test_versions_form_a_lineage_and_record_the_tickets_they_answer(
    db: Factory, model: str, make_request: Callable[..., TicketRequest]
) -> None:
    with db.begin() as session:
        tickets = [filing.file_ticket(make_request(), session=session).id for _ in range(2)]
        parent = registry.resolve("tofu", session=session)
        child = registry.add_version(
            "tofu",
            session=session,
            parent=parent,
            checkpoint_uri="s3://models/tofu/v2",
            checkpoint_sha256="c" * 64,
            mask_uri="s3://models/tofu/v2/mask.safetensors",
            mask_sha256="d" * 64,
            hparams={"p_percent": 0.5},
            metrics={"forget_rougeL": 0.12},
            gate={"passed": True},
            ticket_ids=tickets,
        )
        assert (child.version, child.parent.version) == (2, 1)
        assert child.training_manifest_uri == parent.training_manifest_uri  # inherited
        assert child.eval_suite_uri == parent.eval_suite_uri == "s3://models/tofu/v1/eval_suite.json"
        assert [t.id for t in child.tickets] == tickets
        assert {queue.get_ticket(t, session=session).result_version_id for t in tickets} == {child.id}
        record = session.scalars(select(AuditRecord).where(AuditRecord.kind == "model.version_added")).all()[-1]
        assert record.payload["ticket_ids"] == tickets
        assert (record.payload["mask_sha256"], record.payload["checkpoint_sha256"]) == (
            "d" * 64,
            "c" * 64,
        )

    with pytest.raises(TicketNotFoundError), db.begin() as session:
        registry.add_version(
            "tofu",
            session=session,
            checkpoint_uri="x",
            checkpoint_sha256="e" * 64,
            ticket_ids=[999],
        )


def test_references_resolve_by_alias_version_or_name(db: Factory, model: str) -> None:
    with db.begin() as session:
        v1 = registry.resolve("tofu@1", session=session)
        v2 = registry.add_version("tofu", session=session, checkpoint_uri="s3://m/v2", checkpoint_sha256="2" * 64)
        assert registry.resolve("tofu", session=session).id == v1.id  # production still points at 1
        registry.set_alias("tofu", "production", 2, session=session, actor="staff")
        registry.set_alias("tofu", "candidate", 1, session=session)
        assert registry.resolve("tofu", session=session).id == v2.id
        assert registry.resolve("tofu@production", session=session).id == v2.id
        assert registry.resolve("tofu@candidate", session=session).id == v1.id
        assert registry.resolve("tofu@2", session=session).id == v2.id
        moved = session.scalars(select(AuditRecord).where(AuditRecord.kind == "model.alias_moved")).all()
        assert [(r.payload["alias"], r.payload["from_version"], r.payload["to_version"]) for r in moved] == [
            ("production", None, 1),
            ("production", 1, 2),
            ("candidate", None, 1),
        ]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("gpt5", "unknown model 'gpt5'"),
        ("tofu@staging", "has no alias 'staging'"),
        ("tofu@7", "has no version 7"),
        ("empty", "has no versions yet"),
    ],
)
def test_unknown_references_say_what_is_missing(db: Factory, model: str, ref: str, message: str) -> None:
    with db.begin() as session:
        registry.register_model("empty", session=session)
    with pytest.raises(UnknownModelError, match=message), db.begin() as session:
        registry.resolve(ref, session=session)


def test_without_a_production_alias_a_name_means_the_newest_version(db: Factory) -> None:
    with db.begin() as session:
        registry.register_model("m", session=session)
        for n in (1, 2):
            registry.add_version("m", session=session, checkpoint_uri=f"s3://m/{n}", checkpoint_sha256=str(n) * 64)
        assert registry.resolve("m", session=session).version == 2


def test_names_and_aliases_are_checked(db: Factory, model: str) -> None:
    with pytest.raises(InvalidRequestError, match="already registered"), db.begin() as session:
        registry.register_model("tofu", session=session)
    with pytest.raises(InvalidRequestError, match="must match"), db.begin() as session:
        registry.register_model("bad name!", session=session)
    with pytest.raises(InvalidRequestError, match="alias '3'"), db.begin() as session:
        registry.set_alias("tofu", "3", 1, session=session)  # would read as a version


def test_gate_policy_overrides_merge_over_the_service_defaults(db: Factory) -> None:
    defaults = GatePolicy(max_rounds=4)
    with db.begin() as session:
        registry.register_model("strict", session=session, gate_policy={"forget_rougeL_max": 0.2})
        registry.register_model("plain", session=session)
        strict = registry.gate_policy("strict", session=session, defaults=defaults)
        assert (strict.forget_rougeL_max, strict.max_rounds, strict.retain_rougeL_min_ratio) == (
            0.2,
            4,
            0.9,
        )
        assert registry.gate_policy("plain", session=session, defaults=defaults) == defaults
    with pytest.raises(InvalidRequestError, match="forget_rougeL_max"), db.begin() as session:
        registry.register_model("bad", session=session, gate_policy={"forget_rougeL_max": 3})
    with pytest.raises(InvalidRequestError, match="Extra inputs"), db.begin() as session:
        registry.register_model("bad", session=session, gate_policy={"max_round": 3})
    with db.begin() as session:
        assert [m.name for m in registry.list_models(session=session)] == ["plain", "strict"]
