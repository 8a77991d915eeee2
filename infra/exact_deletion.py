"""Exact deletion's bookkeeping: which tickets a line's rebuilt versions cover, which wait for the next
rebuild, and the rebuilt version with its audit records.

GRIN answers a ticket approximately (the weights are fine-tuned until the data looks never seen); a
rebuild trains the line's recipe on the lineage manifest (its training data minus every deleted
record), so the tickets in that manifest's lineage are then deleted exactly. A version of method
`exact` records the tickets it covers in `hparams["covers_ticket_ids"]`; a ticket is covered when an
exact version on the serving version's line of descent lists it. Nothing here moves bytes but rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra import audit, registration, registry
from infra.db.models import AuditRecord, ModelVersion
from infra.registration import AliasRule
from infra.registry import NewVersion

EXACT = "exact"
REBUILT = "model.rebuilt_exact"  # one per rebuilt version: its manifest, recipe, gate and covered tickets
COVERED = "ticket.exact_deletion"  # one per covered ticket: "exact deletion in vN"


def is_exact(version: ModelVersion) -> bool:
    return (version.hparams or {}).get("method") == EXACT


def ancestry(version: ModelVersion) -> list[ModelVersion]:
    """`version` and its parents back to the line's origin, newest first."""
    chain = [version]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return chain


def last_exact(version: ModelVersion) -> ModelVersion | None:
    """The newest exact version on `version`'s line of descent (itself included), if any."""
    return next((v for v in ancestry(version) if is_exact(v)), None)


def covered(version: ModelVersion) -> set[int]:
    """Tickets deleted exactly in some version on `version`'s line of descent."""
    return {t for v in ancestry(version) if is_exact(v) for t in v.hparams.get("covers_ticket_ids", [])}


def pending(version: ModelVersion) -> list[int]:
    """Tickets answered along `version`'s lineage and not yet deleted exactly: the next rebuild's, in order."""
    done = covered(version)
    return [d["ticket_id"] for d in version.lineage_deletions if d["ticket_id"] not in done]


def register_exact(
    model_name: str,
    parent_version_id: int,
    *,
    checkpoint_uri: str,
    checkpoint_sha256: str,
    manifest_uri: str,
    manifest_sha256: str,
    covers: Sequence[int],
    hparams: Mapping[str, Any],
    metrics: Mapping[str, Any],
    gate: Mapping[str, Any],
    session: Session,
    alias: str | None = registry.PRODUCTION,
    actor: str = "rebuild-line",
) -> ModelVersion:
    """Register a rebuilt checkpoint as the line's next version (method `exact`), move `alias` onto it,
    mark every older version superseded for the tickets it covers, and audit it: one `REBUILT` record
    and one `COVERED` record per ticket. Idempotent per checkpoint (a retried registration returns the
    version it wrote); ParentMovedError when the serving version is no longer the one whose manifest
    the rebuild trained on: a ticket answered meanwhile would be lost, so the rebuild is discarded."""
    registry.lock_model(model_name, session=session)
    done = registry.find_registered(model_name, checkpoint_sha256, session=session)
    if done is not None and is_exact(done):
        return done
    registry.ensure_parent_current(f"{model_name}@{alias}" if alias else model_name, parent_version_id, session=session)
    parent = session.get(ModelVersion, parent_version_id)
    new = NewVersion(
        checkpoint_uri=checkpoint_uri,
        checkpoint_sha256=checkpoint_sha256,
        parent=parent,
        training_manifest_uri=manifest_uri,
        training_manifest_sha256=manifest_sha256,
        hparams={**hparams, "method": EXACT, "covers_ticket_ids": sorted(covers), "manifest_sha256": manifest_sha256},
        metrics=dict(metrics),
        gate=dict(gate),
    )
    version = registration.register_version(
        model_name, new, session=session, alias=alias, rule=AliasRule.if_on_parent, actor=actor
    ).version
    superseded = registry.mark_superseded(version, covers, session=session)
    _audit_rebuild(
        model_name,
        version,
        new,
        covers,
        trained_from=hparams.get("trained_from"),
        gate=gate,
        superseded=superseded,
        actor=actor,
        session=session,
    )
    return version


def _audit_rebuild(
    model_name: str,
    version: ModelVersion,
    new: NewVersion,
    covers: Sequence[int],
    *,
    trained_from: Any,
    gate: Mapping[str, Any],
    superseded: list[int],
    actor: str,
    session: Session,
) -> None:
    """The rebuilt version's `REBUILT` record, then one `COVERED` record per ticket it deletes exactly."""
    audit.append(
        REBUILT,
        {
            "model": model_name,
            "version": version.version,
            "parent_version": new.parent.version,
            "checkpoint_sha256": new.checkpoint_sha256,
            "training_manifest_uri": new.training_manifest_uri,
            "training_manifest_sha256": new.training_manifest_sha256,
            "covers_ticket_ids": sorted(covers),
            "trained_from": trained_from,
            "gate_passed": gate.get("passed"),
            "versions_superseded": superseded,
            "actor": actor,
        },
        session=session,
    )
    for ticket_id in sorted(covers):
        audit.append(
            COVERED,
            {
                "model": model_name,
                "version": version.version,
                "checkpoint_sha256": new.checkpoint_sha256,
                "training_manifest_sha256": new.training_manifest_sha256,
                "detail": f"exact deletion in v{version.version}",
            },
            session=session,
            ticket_id=ticket_id,
        )


def deletion_kinds(ticket_id: int, *, session: Session) -> list[dict[str, Any]]:
    """How a ticket's data was deleted, oldest first: `approximate` (the unlearned version that answered
    it) then `exact` (the rebuilt version that covers it), each with its version and date."""
    rows = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.ticket_id == ticket_id, AuditRecord.kind.in_(("unlearning.registered", COVERED)))
        .order_by(AuditRecord.id)
    )
    return [
        {
            "kind": EXACT if r.kind == COVERED else "approximate",
            "version": r.payload.get("version"),
            "at": _iso(r.created_at),
        }
        for r in rows
    ]


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
