"""The model registry: named models, their lineage of versions, movable aliases, gate overrides.

A reference is `name` (its `production` alias, or its newest version when it has none),
`name@alias` or `name@N` for version N.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from infra import audit
from infra.db.base import utcnow
from infra.db.models import ModelAlias, ModelVersion, RegisteredModel, Ticket
from infra.errors import (
    InvalidRequestError,
    ParentMovedError,
    TicketNotFoundError,
    UnknownModelError,
    one_line,
)
from policy.gate_policy import GatePolicy
from policy.methods import Method

PRODUCTION = "production"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")  # a leading letter keeps it apart from versions


def register_model(
    name: str,
    *,
    session: Session,
    description: str | None = None,
    gate_policy: Mapping[str, Any] | None = None,
) -> RegisteredModel:
    """Create a model line; `gate_policy` holds only the fields that differ from the service defaults."""
    if not NAME_PATTERN.match(name):
        raise InvalidRequestError(f"model name {name!r} must match {NAME_PATTERN.pattern}")
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is not None:
        raise InvalidRequestError(f"model {name!r} is already registered")
    overrides = _checked_overrides(gate_policy)
    model = RegisteredModel(name=name, description=description, gate_policy=overrides)
    session.add(model)
    session.flush()
    audit.append(
        "model.registered",
        {"model": name, "model_id": model.id, "gate_policy": overrides},
        session=session,
    )
    return model


def get_model(name: str, *, session: Session) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        raise UnknownModelError(f"unknown model {name!r}")
    return model


def list_models(*, session: Session) -> list[RegisteredModel]:
    query = (
        select(RegisteredModel)
        .options(selectinload(RegisteredModel.versions), selectinload(RegisteredModel.aliases))
        .order_by(RegisteredModel.name)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class NewVersion:
    """What a new version records: its checkpoint, what it stands on and the tickets it answers.

    The training manifest and the evaluation suite are inherited from the parent when not given (an
    unlearning run gives the manifest it stands on: the parent's minus the forget records).
    `deletions` (`{"ticket_id", "forget_sha256"}`) are this version's own; its `lineage_deletions`
    are the parent's followed by them. `base_checkpoint_*`: for an intervention checkpoint (GRUN),
    the full-weight checkpoint it applies to.
    """

    checkpoint_uri: str
    checkpoint_sha256: str
    parent: ModelVersion | None = None
    training_manifest_uri: str | None = None
    training_manifest_sha256: str | None = None
    eval_suite_uri: str | None = None
    mask_uri: str | None = None
    mask_sha256: str | None = None
    base_checkpoint_uri: str | None = None
    base_checkpoint_sha256: str | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)
    ticket_ids: Sequence[int] = ()
    deletions: Sequence[Mapping[str, Any]] = ()


def add_version(model_name: str, new: NewVersion | None = None, *, session: Session, **fields: Any) -> ModelVersion:
    """Record `new` (or a NewVersion of `fields`) as the line's next version, mark the tickets it
    answers, and audit it (`model.version_added`). Producers register through infra/registration.py,
    which also moves the alias; calling this alone adds a bare version (tests, fixtures)."""
    if new is None:
        new = NewVersion(**fields)
    elif fields:
        raise TypeError("give a NewVersion or its fields, not both")
    model = get_model(model_name, session=session)
    parent = new.parent
    if parent is not None and parent.model_id != model.id:
        raise InvalidRequestError(f"parent version {parent.id} belongs to another model")
    tickets = list(session.scalars(select(Ticket).where(Ticket.id.in_(list(new.ticket_ids)))))
    missing = set(new.ticket_ids) - {t.id for t in tickets}
    if missing:
        raise TicketNotFoundError(f"no tickets {sorted(missing)}")
    number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)) or 0) + 1
    version = ModelVersion(
        model=model,
        version=number,
        parent=parent,
        checkpoint_uri=new.checkpoint_uri,
        checkpoint_sha256=new.checkpoint_sha256,
        training_manifest_uri=new.training_manifest_uri or (parent.training_manifest_uri if parent else None),
        training_manifest_sha256=new.training_manifest_sha256
        if new.training_manifest_uri
        else (parent.training_manifest_sha256 if parent else None),
        lineage_deletions=[*(parent.lineage_deletions if parent else []), *map(dict, new.deletions)],
        eval_suite_uri=new.eval_suite_uri or (parent.eval_suite_uri if parent else None),
        mask_uri=new.mask_uri,
        mask_sha256=new.mask_sha256,
        base_checkpoint_uri=new.base_checkpoint_uri,
        base_checkpoint_sha256=new.base_checkpoint_sha256,
        hparams=dict(new.hparams),
        metrics=dict(new.metrics),
        gate=dict(new.gate),
        tickets=tickets,
    )
    session.add(version)
    session.flush()
    for ticket in tickets:
        ticket.result_version_id = version.id
    audit.append("model.version_added", _version_added(version), session=session)
    return version


def _version_added(version: ModelVersion) -> dict[str, Any]:
    """The audit payload of a new version: every reference it records."""
    return {
        "model": version.model.name,
        "version": version.version,
        "version_id": version.id,
        "parent_version_id": version.parent.id if version.parent else None,
        "checkpoint_uri": version.checkpoint_uri,
        "checkpoint_sha256": version.checkpoint_sha256,
        "training_manifest_uri": version.training_manifest_uri,
        "training_manifest_sha256": version.training_manifest_sha256,
        "lineage_deletions": version.lineage_deletions,
        "eval_suite_uri": version.eval_suite_uri,
        "mask_uri": version.mask_uri,
        "mask_sha256": version.mask_sha256,
        "base_checkpoint_uri": version.base_checkpoint_uri,
        "base_checkpoint_sha256": version.base_checkpoint_sha256,
        "hparams": version.hparams,
        "metrics": version.metrics,
        "gate": version.gate,
        "ticket_ids": sorted(t.id for t in version.tickets),
    }


def set_alias(
    model_name: str,
    alias: str,
    version: int,
    *,
    session: Session,
    actor: str = "system",
    override_reason: str | None = None,
) -> ModelAlias:
    """Point `alias` at version number `version` of the model (creating the alias if new).

    A version that still holds data deleted by a later version's tickets is refused unless
    `override_reason` says why; the override is in the audit record.
    """
    if not ALIAS_PATTERN.match(alias):
        raise InvalidRequestError(f"alias {alias!r} must match {ALIAS_PATTERN.pattern}")
    model = get_model(model_name, session=session)
    target = _version(model, version, session=session)
    if target.purged_at is not None:
        raise InvalidRequestError(f"{model.name}@{version} was purged: its checkpoint is gone")
    if target.holds_deleted_data_of and not (override_reason or "").strip():
        raise InvalidRequestError(
            f"{model.name}@{version} holds data deleted by tickets {sorted(target.holds_deleted_data_of)}; "
            "moving an alias to it needs an explicit override reason"
        )
    row = session.get(ModelAlias, (model.id, alias))
    previous = row.version.version if row else None
    if row is None:
        row = ModelAlias(model_id=model.id, alias=alias, version_id=target.id)
        session.add(row)
    else:
        row.version_id = target.id
    session.flush()
    audit.append(
        "model.alias_moved",
        {
            "model": model.name,
            "alias": alias,
            "from_version": previous,
            "to_version": version,
            "actor": actor,
            **(
                {
                    "override_reason": override_reason,
                    "holds_deleted_data_of": sorted(target.holds_deleted_data_of),
                }
                if target.holds_deleted_data_of
                else {}
            ),
        },
        session=session,
    )
    return row


def resolve(ref: str, *, session: Session) -> ModelVersion:
    """The version a reference names; UnknownModelError for any name, alias or version not held."""
    name, _, selector = ref.partition("@")
    model = get_model(name, session=session)
    if selector.isdigit():
        return _version(model, int(selector), session=session)
    alias = selector or PRODUCTION
    row = session.get(ModelAlias, (model.id, alias))
    if row is not None:
        return row.version
    if selector:
        raise UnknownModelError(f"model {name!r} has no alias {alias!r}")
    newest = session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version.desc()).limit(1)
    )
    if newest is None:
        raise UnknownModelError(f"model {name!r} has no versions yet")
    return newest


def check_method_fits(version: ModelVersion, method: str) -> None:
    """A GRIN ticket on a GRUN version would fine-tune the base weights under an intervention trained
    for the old ones, and save them without it: refused (InvalidRequestError) with what to do instead."""
    if version.base_checkpoint_sha256 and method != Method.grun:
        raise InvalidRequestError(
            f"{version.model.name}@{version.version} is a GRUN intervention over base checkpoint "
            f"{version.base_checkpoint_sha256[:12]}; file method grun against it, or {method} against a "
            "version that holds its own weights"
        )


def lock_model(name: str, *, session: Session) -> RegisteredModel:
    """Take the model's row lock (PostgreSQL `FOR UPDATE`): registrations of one model serialise, so
    version numbers, the alias and the parent check below cannot interleave. SQLite locks the whole
    database on the first write anyway."""
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name).with_for_update())
    if model is None:
        raise UnknownModelError(f"unknown model {name!r}")
    return model


def ensure_parent_current(ref: str, parent_version_id: int, *, session: Session) -> None:
    """ParentMovedError unless `ref` (what the tickets named) still resolves to the run's parent.

    A run unlearns from the version its tickets' reference resolved to when it was planned. If another
    run registered a version there since (the alias moved, or a newer version appeared), registering
    this candidate would serve a model that still holds the other run's deleted data, or drop it.
    """
    current = resolve(ref, session=session)
    if current.id != parent_version_id:
        raise ParentMovedError(
            f"{ref} now resolves to version {current.version}, registered while this run unlearned its "
            "parent; the tickets are answered again on it"
        )


def find_registered(model_name: str, checkpoint_sha256: str, *, session: Session) -> ModelVersion | None:
    """The version that already holds this candidate (a retried registration), if any."""
    return session.scalar(
        select(ModelVersion)
        .join(RegisteredModel)
        .where(RegisteredModel.name == model_name, ModelVersion.checkpoint_sha256 == checkpoint_sha256)
    )


def origin(version: ModelVersion) -> ModelVersion:
    """The first version of `version`'s line of descent (itself when it has no parent)."""
    while version.parent is not None:
        version = version.parent
    return version


def origin_metrics(version: ModelVersion) -> dict[str, float] | None:
    """The line's first version's metrics as recorded, or None when none were.

    A version registered by unlearning records its parent's numbers under `metrics["before"]`, so
    the origin's are the `before` of its first descendant on this line; an origin registered with
    flat numeric metrics gives those.
    """
    chain = [version]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    root = chain[-1]
    flat = {k: float(v) for k, v in (root.metrics or {}).items() if isinstance(v, int | float)}
    if flat:
        return flat
    if len(chain) >= 2:
        before = (chain[-2].metrics or {}).get("before")
        if isinstance(before, Mapping) and before:
            return {k: float(v) for k, v in before.items()}
    return None


def mark_superseded(version: ModelVersion, ticket_ids: Iterable[int], *, session: Session) -> list[int]:
    """Every older version of `version`'s model still holds the data its tickets deleted: mark them.

    Returns the version numbers marked. The audit record names them and the tickets.
    """
    tickets = sorted(set(ticket_ids))
    if not tickets:
        return []
    older = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.model_id == version.model_id, ModelVersion.version < version.version)
        .order_by(ModelVersion.version)
    ).all()
    marked = []
    for row in older:
        held = sorted(set(row.holds_deleted_data_of or []) | set(tickets))
        if held != sorted(row.holds_deleted_data_of or []):
            row.holds_deleted_data_of = held
            row.superseded_at = row.superseded_at or utcnow()
            marked.append(row.version)
    session.flush()
    if marked:
        audit.append(
            "model.versions_hold_deleted_data",
            {
                "model": version.model.name,
                "versions": marked,
                "ticket_ids": tickets,
                "superseded_by": version.version,
            },
            session=session,
        )
    return marked


def gate_policy(model_name: str, *, session: Session, defaults: GatePolicy) -> GatePolicy:
    """The service defaults with the model's overrides laid over them."""
    overrides = get_model(model_name, session=session).gate_policy or {}
    return GatePolicy.model_validate({**defaults.model_dump(), **overrides})


def _version(model: RegisteredModel, number: int, *, session: Session) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number))
    if row is None:
        raise UnknownModelError(f"model {model.name!r} has no version {number}")
    return row


def _checked_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not overrides:
        return None
    try:
        GatePolicy.model_validate(dict(overrides))
    except ValidationError as exc:
        raise InvalidRequestError(f"gate policy overrides: {one_line(exc)}") from None
    return dict(overrides)
