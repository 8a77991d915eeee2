"""Adding a version to a model line, with its audit records and its alias: the one way every producer
registers a checkpoint — the `train-model` flow, `grin model register` / `grin model import`, and an
unlearning run that passed its gate.

`register_version` adds the version (`model.version_added`), marks the older versions that still
hold the data its tickets deleted (`model.versions_hold_deleted_data`), and moves an alias onto it
(`model.alias_moved`) by one of three rules: always (a trained or registered first version), only
when the line has no such alias yet (an import), or only when the alias pointed at the parent (an
unlearning run: unlearning a side branch leaves production alone). All in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra import registry
from infra.db.models import AuditRecord, ModelVersion, RegisteredModel
from infra.registry import NewVersion


class AliasRule(StrEnum):
    """When `register_version` moves its alias onto the new version."""

    always = "always"
    if_unset = "if_unset"  # the line has no such alias yet
    if_on_parent = "if_on_parent"  # it pointed at the new version's parent


@dataclass(frozen=True)
class Registered:
    """The new version, and the older versions now marked as holding data its tickets deleted."""

    version: ModelVersion
    superseded: list[int]


def ensure_line(
    name: str, *, session: Session, description: str | None = None, gate_policy: Mapping[str, Any] | None = None
) -> RegisteredModel:
    """The model line `name`, registered first (with these details) if it is new."""
    try:
        return registry.get_model(name, session=session)
    except LookupError:
        return registry.register_model(name, session=session, description=description, gate_policy=gate_policy)


def register_version(
    model_name: str,
    new: NewVersion,
    *,
    session: Session,
    alias: str | None = registry.PRODUCTION,
    rule: AliasRule = AliasRule.always,
    actor: str = "system",
) -> Registered:
    """Add `new` as the line's next version, mark what it supersedes, and move `alias` per `rule`."""
    version = registry.add_version(model_name, new, session=session)
    superseded = registry.mark_superseded(version, new.ticket_ids, session=session)
    if alias is not None and _moves(model_name, alias, rule, new.parent, session=session):
        registry.set_alias(model_name, alias, version.version, session=session, actor=actor)
    return Registered(version=version, superseded=superseded)


def _moves(model_name: str, alias: str, rule: AliasRule, parent: ModelVersion | None, *, session: Session) -> bool:
    if rule is AliasRule.always:
        return True
    try:
        current = registry.resolve(f"{model_name}@{alias}", session=session)
    except LookupError:
        return rule is AliasRule.if_unset
    return rule is AliasRule.if_on_parent and parent is not None and current.id == parent.id


def answered_records(
    kind: str, version: ModelVersion, ticket_ids: Iterable[int], *, session: Session
) -> dict[int, AuditRecord]:
    """Ticket id -> its `kind` audit record naming `version` (what a committed registration wrote)."""
    rows = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.kind == kind, AuditRecord.ticket_id.in_(list(ticket_ids)))
        .order_by(AuditRecord.id)
    )
    return {r.ticket_id: r for r in rows if r.payload.get("version") == version.version}
