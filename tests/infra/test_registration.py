"""Registration: every producer adds a version the same way, and the alias moves by its rule."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from infra import registration, registry
from infra.db.models import AuditRecord
from infra.registration import AliasRule
from infra.registry import NewVersion

Factory = sessionmaker[Session]


def _new(n: int, parent=None) -> NewVersion:
    return NewVersion(checkpoint_uri=f"s3://models/tofu/v{n}", checkpoint_sha256=str(n) * 64, parent=parent)


def test_the_alias_moves_by_its_rule(db: Factory, model: str) -> None:
    with db.begin() as session:
        side = registry.add_version("tofu", _new(2), session=session)  # a side branch off the line
        # unlearning the side branch leaves production alone; unlearning production's version moves it
        registration.register_version("tofu", _new(3, side), session=session, rule=AliasRule.if_on_parent)
        assert registry.resolve("tofu", session=session).version == 1
        production = registry.resolve("tofu", session=session)
        registration.register_version("tofu", _new(4, production), session=session, rule=AliasRule.if_on_parent)
        assert registry.resolve("tofu", session=session).version == 4
        # an import aliases only a line that has no such alias yet
        registration.register_version("tofu", _new(5), session=session, rule=AliasRule.if_unset, actor="import")
        assert registry.resolve("tofu", session=session).version == 4
        registration.register_version("tofu", _new(6), session=session, alias="staging", rule=AliasRule.if_unset)
        assert registry.resolve("tofu@staging", session=session).version == 6
        # a trained version always takes it
        registration.register_version("tofu", _new(7), session=session, actor="train-model")
        assert registry.resolve("tofu", session=session).version == 7
        kinds = [r.kind for r in session.scalars(select(AuditRecord).order_by(AuditRecord.id))][-9:]
        assert kinds.count("model.version_added") == 6 and kinds.count("model.alias_moved") == 3


def test_ensure_line_registers_a_new_line_once(db: Factory) -> None:
    with db.begin() as session:
        first = registration.ensure_line("new", session=session, description="d")
        assert registration.ensure_line("new", session=session, description="other") is first
        assert first.description == "d"
