"""Registration: the passing candidate becomes the next model version, and each ticket it answers
gets its `registered` transition and one hash-chained audit record, all in one transaction.

Each audit record is also exported to the object store (`audit/records/<id>.json`) so reviewers
can follow a link from the Prefect UI and auditors can hold a copy outside the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

from prefect import task
from pydantic import Field

from grin_core.unlearning.grun import THREAT_MODEL
from infra import audit, queue, registration, registry
from infra.db.models import AuditRecord, ModelVersion, Ticket
from infra.errors import IllegalTransitionError
from infra.failpoints import failpoint
from infra.registration import AliasRule
from infra.registry import NewVersion
from infra.settings import get_settings
from infra.ticket_status import TicketStatus
from policy.gate import GateDecision
from policy.round_setting import RoundRecord, RoundSetting
from tasks.contracts import (
    CheckpointRef,
    Deletion,
    EvalOutcome,
    Frozen,
    MaskOutcome,
    ObjectRef,
    RunPlan,
    Snapshot,
    UnlearnOutcome,
    WorkerStamp,
)
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES


class UnlearningAudit(Frozen):
    """The audit payload of one answered ticket: everything that ties the checkpoint to its inputs."""

    ticket_id: int
    subject_sha256: str
    request_sha256: str
    model: str
    parent_version: int
    parent_checkpoint_sha256: str
    version: int
    checkpoint_uri: str
    checkpoint_sha256: str
    forget_snapshot_sha256: str
    forget_count: int
    keyword_count: int
    retain_snapshot: ObjectRef
    retain_count: int
    eval_suite: ObjectRef
    mask: ObjectRef | None  # None for GRUN: no weights were selected
    selected_weights: int | None
    eligible_weights: int | None
    hparams: RoundSetting
    rounds: list[RoundRecord]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    gate: GateDecision
    tickets_in_run: list[int]
    flow_run_id: str | None
    workers: dict[str, WorkerStamp]
    # The manifest the version stands on and every deletion along its lineage (ids and hashes).
    training_manifest: ObjectRef | None = None
    lineage_deletions: list[Deletion] = Field(default_factory=list)
    origin_metrics: dict[str, float] | None = None
    versions_holding_deleted_data: list[int] = Field(default_factory=list)  # older versions now marked
    # GRUN: the checkpoint is an intervention over these unchanged base weights, which still hold the data
    base_checkpoint_sha256: str | None = None
    intervention_sha256: str | None = None
    base_weights_changed: bool = True
    # what the gate ran: the relearning probe is on unless the line's policy switched it off
    relearn_probe: bool | None = None
    probes: list[str] | None = None  # the other probes the line ran (None: every default one)
    privacy_waived: bool | None = None
    epochs_run: float | None = None  # what the last round's schedule ran
    flops: dict[str, Any] | None = None  # the last round's model FLOPs by stage
    threat_model: str | None = None
    # `text_key` hashes of this ticket's forget questions and answers: `grin audit verify-exact` removes
    # them from the origin manifest to re-derive the lineage manifest (the text itself is purged)
    forget_record_keys: list[str] = Field(default_factory=list)


class Registration(Frozen):
    model_name: str
    version: int
    version_id: int
    checkpoint: CheckpointRef
    audit_record_ids: dict[int, int]  # ticket id -> audit record id
    chain_head: str  # the chain's head hash after the last of them


@task(name="export-audit-records", task_run_name="export-audit-{label}", **IO_RETRIES)
def export_audit_records(label: str, record_ids: list[int]) -> dict[int, ObjectRef]:
    """Copy committed audit records to `audit/records/<id>.json`; returns record id -> object."""
    with sessions().begin() as session:
        rows = [session.get(AuditRecord, i) for i in record_ids]
        bodies = {r.id: audit.as_dict(r) for r in rows}
    store = object_store()
    exported = {}
    for record_id, body in bodies.items():
        stored = store.put_bytes(
            f"audit/records/{record_id:012d}.json", json.dumps(body, indent=1, sort_keys=True).encode()
        )
        exported[record_id] = ObjectRef(uri=stored.uri, sha256=stored.sha256)
    return exported


REGISTERED = "unlearning.registered"  # the audit record of each ticket a registered version answers


@task(name="register-version", task_run_name="register-{label}", **IO_RETRIES)
def register_version(
    label: str,
    owner: str,
    plan: RunPlan,
    snapshot: Snapshot,
    mask: MaskOutcome | None,
    unlearned: UnlearnOutcome,
    setting: RoundSetting,
    before: EvalOutcome,
    after: EvalOutcome,
    decision: GateDecision,
    rounds: list[RoundRecord],
    flow_run_id: str | None,
) -> Registration:
    failpoint("register.before")  # crash-safety tests: die with the candidate evaluated, not registered
    name = plan.parent.model_name
    with sessions().begin() as session:
        registry.lock_model(name, session=session)  # one registration of a model at a time
        done = registry.find_registered(name, unlearned.checkpoint.sha256, session=session)
        if done is not None:  # a retry of a registration that committed: answer with what it wrote
            return _registration_of(done, plan, owner, session=session)
        registry.ensure_parent_current(plan.parent_ref or name, plan.parent.version_id, session=session)
        parent = session.get(ModelVersion, plan.parent.version_id)
        new = _new_version(plan, snapshot, mask, unlearned, setting, before, after, decision, parent)
        added = registration.register_version(
            name,
            new,
            session=session,
            alias=get_settings().promote_alias or None,
            rule=AliasRule.if_on_parent,
            actor=owner,
        )
        version = added.version
        if plan.parent.origin_metrics is not None or before.metrics:
            version.metrics = {**version.metrics, "origin": plan.parent.origin_metrics or before.metrics}
        payload_of = partial(
            _audit_payload,
            plan=plan,
            snapshot=snapshot,
            mask=mask,
            unlearned=unlearned,
            setting=setting,
            before=before,
            after=after,
            decision=decision,
            rounds=rounds,
            flow_run_id=flow_run_id,
            version=version,
            superseded=added.superseded,
        )
        records = {t: _register_ticket(t, version, owner, payload_of, session=session) for t in plan.ticket_ids}
        return _registration(name, version, unlearned, records)


def _new_version(
    plan: RunPlan,
    snapshot: Snapshot,
    mask: MaskOutcome | None,
    unlearned: UnlearnOutcome,
    setting: RoundSetting,
    before: EvalOutcome,
    after: EvalOutcome,
    decision: GateDecision,
    parent: ModelVersion,
) -> NewVersion:
    """The registry row of a gated candidate: its checkpoint, mask or intervention, setting, metrics and lineage."""
    return NewVersion(
        checkpoint_uri=unlearned.checkpoint.uri,
        checkpoint_sha256=unlearned.checkpoint.sha256,
        parent=parent,
        mask_uri=mask.mask.uri if mask else None,
        mask_sha256=mask.mask.sha256 if mask else None,
        base_checkpoint_uri=unlearned.base.uri if unlearned.base else None,
        base_checkpoint_sha256=unlearned.base.sha256 if unlearned.base else None,
        hparams=setting.model_dump(mode="json"),
        metrics={"before": before.metrics, "after": after.metrics},
        gate=decision.model_dump(mode="json"),
        ticket_ids=plan.ticket_ids,
        training_manifest_uri=snapshot.manifest.uri if snapshot.manifest else None,
        training_manifest_sha256=snapshot.manifest.sha256 if snapshot.manifest else None,
        eval_suite_uri=snapshot.eval_suite.uri,
        deletions=[d.model_dump() for d in snapshot.deletions if d.ticket_id in plan.ticket_ids],
    )


def _register_ticket(
    ticket_id: int, version: ModelVersion, owner: str, payload_of: Callable[[Ticket], UnlearningAudit], *, session
) -> AuditRecord:
    """Move one ticket to `registered` and append its `unlearning.registered` record."""
    ticket = queue.transition(
        ticket_id,
        TicketStatus.registered,
        session=session,
        reason=f"version {version.version}",
        actor=owner,
        owner=owner,
    )
    return audit.append(REGISTERED, payload_of(ticket).model_dump(mode="json"), session=session, ticket_id=ticket_id)


def _registration(name: str, version: ModelVersion, unlearned: UnlearnOutcome, records: dict) -> Registration:
    return Registration(
        model_name=name,
        version=version.version,
        version_id=version.id,
        checkpoint=unlearned.checkpoint,
        audit_record_ids={t: r.id for t, r in records.items()},
        chain_head=max(records.values(), key=lambda r: r.id).hash,
    )


def _audit_payload(
    ticket: Ticket,
    plan: RunPlan,
    snapshot: Snapshot,
    mask: MaskOutcome | None,
    unlearned: UnlearnOutcome,
    setting: RoundSetting,
    before: EvalOutcome,
    after: EvalOutcome,
    decision: GateDecision,
    rounds: list[RoundRecord],
    flow_run_id: str | None,
    version: ModelVersion,
    superseded: list[int],
) -> UnlearningAudit:
    """What ties `ticket`'s answer to its inputs: one `unlearning.registered` record's payload."""
    base = unlearned.base
    workers = {**({"score": mask.worker} if mask else {}), "unlearn": unlearned.worker, "evaluate": after.worker}
    return UnlearningAudit(
        ticket_id=ticket.id,
        subject_sha256=audit.sha256_hex(ticket.subject),
        request_sha256=ticket.request_sha256,
        model=plan.parent.model_name,
        parent_version=plan.parent.version,
        parent_checkpoint_sha256=plan.parent.checkpoint.sha256,
        version=version.version,
        checkpoint_uri=unlearned.checkpoint.uri,
        checkpoint_sha256=unlearned.checkpoint.sha256,
        forget_snapshot_sha256=snapshot.forget.sha256,
        forget_count=snapshot.forget_count,
        keyword_count=snapshot.keyword_count,
        retain_snapshot=snapshot.retain,
        retain_count=snapshot.retain_count,
        eval_suite=snapshot.eval_suite,
        mask=mask.mask if mask else None,
        selected_weights=mask.selected if mask else None,
        eligible_weights=mask.eligible if mask else None,
        hparams=setting,
        rounds=rounds,
        metrics_before=before.metrics,
        metrics_after=after.metrics,
        gate=decision,
        tickets_in_run=plan.ticket_ids,
        flow_run_id=flow_run_id,
        workers=workers,
        training_manifest=snapshot.manifest,
        origin_metrics=plan.parent.origin_metrics or before.metrics,
        lineage_deletions=[Deletion(**d) for d in version.lineage_deletions],
        versions_holding_deleted_data=superseded,
        base_checkpoint_sha256=base.sha256 if base else None,
        base_weights_changed=base is None,
        intervention_sha256=unlearned.intervention_sha256,
        threat_model=THREAT_MODEL if base else None,
        relearn_probe=plan.policy.get("relearn_probe"),
        probes=plan.policy.get("probes"),
        privacy_waived=plan.policy.get("privacy_waived"),
        epochs_run=unlearned.epochs_run,
        flops=unlearned.flops,
        forget_record_keys=snapshot.forget_keys.get(ticket.id, []),
    )


def _registration_of(version: ModelVersion, plan: RunPlan, owner: str, *, session: Any) -> Registration:
    """The Registration a committed registration of `version` returned (idempotent per ticket set and
    candidate); IllegalTransitionError if that candidate answers other tickets, LeaseLostError if the
    caller no longer holds them (a stalled run whose takeover registered the same candidate)."""
    for ticket_id in plan.ticket_ids:
        queue.held(ticket_id, owner, session=session)
    if sorted(t.id for t in version.tickets) != sorted(plan.ticket_ids):
        raise IllegalTransitionError(
            f"candidate {version.checkpoint_sha256[:12]} is registered as version {version.version} for tickets "
            f"{sorted(t.id for t in version.tickets)}, not {sorted(plan.ticket_ids)}"
        )
    records = registration.answered_records(REGISTERED, version, plan.ticket_ids, session=session)
    return Registration(
        model_name=plan.parent.model_name,
        version=version.version,
        version_id=version.id,
        checkpoint=CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256),
        audit_record_ids={t: r.id for t, r in records.items()},
        chain_head=max(records.values(), key=lambda r: r.id).hash,
    )


class NothingToForgetAudit(Frozen):
    """The audit payload of a ticket answered without a new version: the parent never learned it."""

    ticket_id: int
    subject_sha256: str
    request_sha256: str
    model: str
    version: int  # the version that already answers the request
    checkpoint_sha256: str
    forget_snapshot_sha256: str
    forget_count: int
    eval_suite: ObjectRef
    metrics: dict[str, float]
    decision: GateDecision
    flow_run_id: str | None


@task(name="record-nothing-to-forget", task_run_name="nothing-to-forget-{label}", **IO_RETRIES)
def record_nothing_to_forget(
    label: str, plan: RunPlan, snapshot: Snapshot, before: EvalOutcome, decision: GateDecision, flow_run_id: str | None
) -> dict[int, int]:
    """One `unlearning.nothing_to_forget` audit record per ticket, saying why; ticket id -> record id."""
    records = {}
    with sessions().begin() as session:
        for ticket_id in plan.ticket_ids:
            ticket = queue.get_ticket(ticket_id, session=session)
            payload = NothingToForgetAudit(
                ticket_id=ticket_id,
                subject_sha256=audit.sha256_hex(ticket.subject),
                request_sha256=ticket.request_sha256,
                model=plan.parent.model_name,
                version=plan.parent.version,
                checkpoint_sha256=plan.parent.checkpoint.sha256,
                forget_snapshot_sha256=snapshot.forget.sha256,
                forget_count=snapshot.forget_count,
                eval_suite=snapshot.eval_suite,
                metrics=before.metrics,
                decision=decision,
                flow_run_id=flow_run_id,
            )
            records[ticket_id] = audit.append(
                "unlearning.nothing_to_forget", payload.model_dump(mode="json"), session=session, ticket_id=ticket_id
            ).id
    return records
