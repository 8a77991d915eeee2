"""The lineage manifest re-derived from the audit chain: the line's origin manifest minus every record
whose question or answer hashes to a key in the `unlearning.registered` records of the tickets along
the lineage. What `grin audit verify-exact` holds an exact version's recorded manifest to.

Only hashes leave here (the keys are `text_key` sha256s; records are never named by their text). Once
the origin's manifest is purged (it holds the deleted records), the oldest ancestor whose manifest is
still stored is the base: removing every lineage key from any ancestor's manifest gives the same result.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from grin_core.data.records import overlaps, parse_qa_records, to_jsonl
from infra import exact_deletion, registry
from infra.db.models import AuditRecord, ModelVersion
from infra.errors import InvalidRequestError, ObjectNotFoundError
from infra.settings import get_settings
from infra.storage import locate

REGISTERED = "unlearning.registered"


def deleted_keys(ticket_ids: list[int], *, session: Session) -> dict[int, list[str]]:
    """Ticket id -> the forget record keys its `unlearning.registered` record holds ([] when it predates them)."""
    rows = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.kind == REGISTERED, AuditRecord.ticket_id.in_(list(ticket_ids)))
        .order_by(AuditRecord.id)
    )
    keys = {t: [] for t in ticket_ids}
    for row in rows:
        keys[row.ticket_id] = list(row.payload.get("forget_record_keys") or [])
    return keys


def _stored(uri: str) -> bytes | None:
    store, key = locate(uri, settings=get_settings())
    try:
        return store.get_bytes(key)
    except ObjectNotFoundError:
        return None


def origin_manifest(first: ModelVersion, *, session: Session) -> tuple[str, str | None] | None:
    """(uri, recorded sha256) of the origin's manifest while it is not purged, else None."""
    if first.purged_at is not None or not first.training_manifest_uri:
        return None
    return first.training_manifest_uri, first.training_manifest_sha256


@dataclass
class ExactVerification:
    """What `grin audit verify-exact` found: hashes, ticket ids and version numbers only."""

    model: str
    version: int
    base_version: int | None = None  # whose stored manifest the re-derivation started from
    recorded_sha256: str | None = None
    audited_sha256: str | None = None  # the `model.rebuilt_exact` record's
    stored_sha256: str | None = None
    rederived_sha256: str | None = None
    covered: list[int] = field(default_factory=list)
    lineage_tickets: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def verify_exact(ref: str, *, session: Session) -> ExactVerification:
    """Re-derive `ref`'s lineage manifest and hold the version's recorded, audited and stored manifest to it;
    every covered ticket's records must be absent from the stored manifest."""
    version = registry.resolve(ref, session=session)
    if not exact_deletion.is_exact(version):
        raise InvalidRequestError(f"{version.model.name}@{version.version} is not an exact (rebuilt) version")
    found = ExactVerification(
        model=version.model.name,
        version=version.version,
        recorded_sha256=version.training_manifest_sha256,
        covered=sorted(version.hparams.get("covers_ticket_ids", [])),
        lineage_tickets=[d["ticket_id"] for d in version.lineage_deletions],
    )
    audited = session.scalars(select(AuditRecord).where(AuditRecord.kind == exact_deletion.REBUILT)).all()
    audited = [r for r in audited if (r.payload.get("model"), r.payload.get("version")) == (found.model, found.version)]
    found.audited_sha256 = audited[-1].payload.get("training_manifest_sha256") if audited else None
    if found.audited_sha256 != found.recorded_sha256:
        found.problems.append(
            f"the version records manifest {found.recorded_sha256} but its audit record {found.audited_sha256}"
        )
    keys = deleted_keys(found.lineage_tickets, session=session)
    found.problems += [f"ticket {t}'s audit record holds no forget record hashes" for t, k in keys.items() if not k]
    all_keys = {k for ks in keys.values() for k in ks}
    base = _base_manifest(version)
    if base is None:
        found.problems.append("no ancestor's manifest is still stored to re-derive from")
    else:
        found.base_version, data = base
        base_records = parse_qa_records(data, source="base manifest")
        rederived = to_jsonl([r for r in base_records if not overlaps(r, all_keys, ())])
        found.rederived_sha256 = hashlib.sha256(rederived).hexdigest()
        if found.rederived_sha256 != found.recorded_sha256:
            found.problems.append(
                f"re-derived manifest {found.rederived_sha256} differs from the recorded {found.recorded_sha256}"
            )
    stored = _stored(version.training_manifest_uri) if version.training_manifest_uri else None
    if stored is None:
        found.problems.append("the version's manifest is not in the store")
        return found
    found.stored_sha256 = hashlib.sha256(stored).hexdigest()
    if found.stored_sha256 != found.recorded_sha256:
        found.problems.append(
            f"stored manifest {found.stored_sha256} differs from the recorded {found.recorded_sha256}"
        )
    records = parse_qa_records(stored, source="stored manifest")
    for ticket_id in found.covered:
        held = sum(overlaps(r, set(keys.get(ticket_id, [])), ()) for r in records)
        if held:
            found.problems.append(f"the stored manifest holds {held} records of covered ticket {ticket_id}")
    return found


def _base_manifest(version: ModelVersion) -> tuple[int, bytes] | None:
    """(version number, bytes) of the oldest ancestor's manifest still stored and matching its recorded hash."""
    for ancestor in reversed(exact_deletion.ancestry(version)):
        if ancestor is version or not ancestor.training_manifest_uri:
            continue
        data = _stored(ancestor.training_manifest_uri)
        recorded = ancestor.training_manifest_sha256
        if data is not None and (recorded is None or hashlib.sha256(data).hexdigest() == recorded):
            return ancestor.version, data
    return None
