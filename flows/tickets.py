"""The ticket flows: what happens to a deletion request from claim to completion. The allowed moves
are written once, in `infra.queue.TRANSITIONS`; this is the order the flows take them in:

    queued → claimed → assembling → scoring → unlearning → evaluating → registered → completed
                          │        └───(grun)────┘            │  ↑ retry ladder (larger p → scoring,
                          └→ rejected (bad input)             │     more epochs → unlearning)
                                                              └→ needs_review (gate failed at the top)
    any stage → failed (infrastructure error; re-queued while attempts remain)
    evaluating → queued (lost the race to register: the version the tickets name moved; re-planned)

`process_ticket` answers one ticket; `batch_unlearning` folds every queued ticket of one model into
one run (one model version, one audit record per ticket). Both call `answer_tickets`. The flow only
orchestrates: tasks do the I/O, the ML stages run where `run_ml_stage` sends them.
"""

from __future__ import annotations

import re
import time
import uuid

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from infra.errors import ParentMovedError
from infra.ticket_status import TicketStatus
from policy.gate import GateDecision, non_member_auc, nothing_to_forget
from policy.gate_policy import GatePolicy
from policy.ladder import next_round
from policy.round_setting import RoundRecord, RoundSetting
from tasks.artifacts import publish_deletion_reports, publish_links, publish_metrics
from tasks.assemble import assemble_sets
from tasks.contracts import CheckpointRef, EvalOutcome, ObjectRef
from tasks.dispatch import run_ml_stage
from tasks.evaluate import evaluate_checkpoint
from tasks.faults import request_fault
from tasks.gate import apply_gate
from tasks.grun import train_intervention
from tasks.plan import plan_run
from tasks.purge import purge_after_run, purge_scratch
from tasks.reclaim import reclaim_leases
from tasks.register import (
    export_audit_records,
    record_nothing_to_forget,
    register_version,
)
from tasks.score import score_weights
from tasks.ticket_state import (
    advance,
    claim_batch,
    claim_ticket,
    finish,
    keep_leases,
    queued_models,
)
from tasks.unlearn import unlearn_weights

S = TicketStatus
REPLANS = 2  # how often one process-ticket run re-plans a ticket whose parent moved under it


class RunReport(BaseModel):
    """What one run did, for the CLI, the demo and the flow's result (numbers and ids only)."""

    label: str
    ticket_ids: list[int]
    outcome: str  # completed | needs_review | rejected | failed | requeued | nothing_to_do
    reason: str | None = None
    model: str | None = None
    parent_version: int | None = None
    version: int | None = None
    checkpoint_sha256: str | None = None
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    gate: GateDecision | None = None
    rounds: list[RoundRecord] = []
    rejected: dict[int, str] = {}
    released: dict[int, str] = {}
    workers: dict[str, int] = {}  # stage -> pid that ran it
    resumed: dict[int, int] = {}  # round -> the step of the progress checkpoint its unlearning resumed from
    timings_s: dict[str, float] = {}


def _owner() -> str:
    return f"flow-run:{flow_run.id}" if flow_run.id else f"local:{uuid.uuid4().hex[:12]}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@flow(name="process-ticket", flow_run_name="ticket-{ticket_id}", persist_result=True)
def process_ticket(ticket_id: int) -> RunReport:
    """Answer one queued deletion ticket.

    A run that lost the race to register (another run moved the version the ticket names) hands the
    ticket back and plans it again on the new version, up to `REPLANS` times; then the schedule has it.
    """
    owner = _owner()
    label = f"ticket-{ticket_id}"
    reclaim_leases()  # a ticket whose earlier run died is queued again before this run claims
    report = None
    for _ in range(1 + REPLANS):
        if not claim_ticket(ticket_id, owner):
            get_run_logger().info("%s is not queued; nothing to do", label)
            return report or RunReport(
                label=label,
                ticket_ids=[ticket_id],
                outcome="nothing_to_do",
                reason="the ticket is not queued",
            )
        with keep_leases([ticket_id], owner):
            report = answer_tickets(label, [ticket_id], owner)
        if report.outcome != "requeued":
            break
    return report


@flow(name="batch-unlearning", flow_run_name="batch-{model}", persist_result=True)
def batch_unlearning(model: str = "*", max_tickets: int = 20) -> list[RunReport]:
    """Answer the queued tickets of one model (up to `max_tickets`) with one unlearning run.

    `model="*"` (the schedule's setting) runs one such batch per model that has queued tickets.
    """
    if model == "*":
        return [
            report for name in queued_models() for report in batch_unlearning(name, max_tickets)
        ]
    owner = _owner()
    reclaim_leases()
    ticket_ids = claim_batch(model, max_tickets, owner)
    label = f"batch-{_slug(model)}-{ticket_ids[0] if ticket_ids else 'none'}"
    if not ticket_ids:
        get_run_logger().info("no queued tickets for %s", model)
        return [
            RunReport(
                label=label,
                ticket_ids=[],
                outcome="nothing_to_do",
                model=model,
                reason="no queued tickets",
            )
        ]
    with keep_leases(ticket_ids, owner):
        return [answer_tickets(label, ticket_ids, owner)]


def answer_tickets(label: str, ticket_ids: list[int], owner: str) -> RunReport:
    """Run the state machine for tickets this run holds under `owner`'s lease."""
    log = get_run_logger()
    started = time.perf_counter()
    run_id = f"{label}-{uuid.uuid4().hex[:8]}"
    report = RunReport(label=label, ticket_ids=list(ticket_ids), outcome="failed")
    forget_snapshot: ObjectRef | None = None
    candidates: list[CheckpointRef] = []
    masks: list[ObjectRef] = []
    kept: tuple[CheckpointRef, ObjectRef | None] | None = None
    try:
        plan = plan_run(label, ticket_ids, owner)
        ids = plan.ticket_ids
        report.ticket_ids, report.released = ids, plan.released
        report.model, report.parent_version = plan.parent.model_name, plan.parent.version
        advance(label, ids, S.assembling, owner)
        assembly = assemble_sets(label, run_id, plan)
        for ticket_id, reason in assembly.rejected.items():
            finish(label, [ticket_id], "rejected", owner, reason)
        report.rejected = assembly.rejected
        ids = [i for i in ids if i not in assembly.rejected]
        plan = plan.model_copy(update={"ticket_ids": ids})
        if assembly.snapshot is None or not ids:
            report.outcome, report.reason = (
                "rejected",
                "; ".join(sorted(set(assembly.rejected.values()))),
            )
            return report
        snapshot = assembly.snapshot
        forget_snapshot = snapshot.forget
        report.timings_s["assemble"] = round(time.perf_counter() - started, 2)
        log.info(
            "%s: %d forget, %d retain records; unlearning %s v%d",
            label,
            snapshot.forget_count,
            snapshot.retain_count,
            plan.parent.model_name,
            plan.parent.version,
        )

        before: EvalOutcome = run_ml_stage(
            evaluate_checkpoint,
            label=f"{label}-parent",
            checkpoint=plan.parent.checkpoint,
            snapshot=snapshot,
        )
        report.before = before.metrics
        policy = GatePolicy(**plan.policy)
        never_learned = nothing_to_forget(policy, before.metrics)
        if never_learned is not None:  # unlearning what was never learned could only do damage
            record_nothing_to_forget(label, plan, snapshot, before, never_learned,
                                     str(flow_run.id) if flow_run.id else None)
            finish(label, ids, "completed", owner)
            publish_deletion_reports(label, ids)
            report.outcome, report.reason, report.gate = "completed", never_learned.reason, never_learned
            return report
        spec, mask = plan.spec, None
        grun = not spec.selects_weights  # an intervention: no weights to score, none changed
        rescore = not grun  # the first round scores; later ones when the ladder moves p
        tried: list[tuple[RoundSetting, GateDecision]] = []
        for round_no in range(1, policy.max_rounds + 1):
            if rescore:
                advance(
                    label,
                    ids,
                    S.scoring,
                    owner,
                    f"round {round_no}: top {spec.p_percent:g}% of weights",
                )
                mask = run_ml_stage(
                    score_weights,
                    label=label,
                    run_id=run_id,
                    round_no=round_no,
                    parent=plan.parent.checkpoint,
                    snapshot=snapshot,
                    spec=spec,
                )
                masks.append(mask.mask)
                report.workers["score"] = mask.worker.pid
            advance(label, ids, S.unlearning, owner, f"round {round_no}: {spec.epochs} epochs")
            stage = {"task": train_intervention} if grun else {"task": unlearn_weights, "mask": mask.mask}
            unlearned = run_ml_stage(
                label=label,
                run_id=run_id,
                round_no=round_no,
                parent=plan.parent.checkpoint,
                snapshot=snapshot,
                spec=spec,
                target_auc=non_member_auc(policy),
                **stage,
            )
            candidates.append(unlearned.checkpoint)
            report.workers["unlearn"] = unlearned.worker.pid
            if unlearned.resumed_from_step is not None:
                report.resumed[round_no] = unlearned.resumed_from_step
            advance(label, ids, S.evaluating, owner, f"round {round_no}")
            after: EvalOutcome = run_ml_stage(
                evaluate_checkpoint,
                label=f"{label}-round{round_no}",
                checkpoint=unlearned.checkpoint,
                snapshot=snapshot,
                relearn=policy.relearn_probe,
                seed=spec.seed,
            )
            report.workers["evaluate"] = after.worker.pid
            decision = apply_gate(label, round_no, spec, plan.policy, before.metrics, after.metrics,
                                  plan.parent.origin_metrics or before.metrics)
            report.rounds.append(RoundRecord.of(round_no, spec, decision))
            report.after, report.gate = after.metrics, decision
            if decision.passed:
                break
            tried.append((spec, decision))
            nxt = next_round(policy, tried)
            if nxt is None:
                break
            rescore, spec = nxt.rescore, nxt.setting
            log.info(
                "%s: gate failed in round %d; retrying with p=%g%%, %d epochs, lr %g",
                label,
                round_no,
                spec.p_percent,
                spec.epochs,
                spec.learning_rate,
            )
        report.timings_s["unlearn_and_evaluate"] = round(
            time.perf_counter() - started - report.timings_s["assemble"], 2
        )

        if not decision.passed:
            publish_metrics(label, before.metrics, after.metrics, None)
            finish(
                label,
                ids,
                "needs_review",
                owner,
                f"gate failed after {len(report.rounds)} round(s): {decision.reason}",
            )
            report.outcome, report.reason = "needs_review", decision.reason
            return report

        try:
            registration = register_version(
                label,
                owner,
                plan,
                snapshot,
                mask,
                unlearned,
                spec,
                before,
                after,
                decision,
                report.rounds,
                str(flow_run.id) if flow_run.id else None,
            )
        except ParentMovedError as exc:  # lost the race: its candidate is purged, the tickets re-planned
            log.warning("%s: %s", label, exc)
            finish(label, ids, "requeued", owner, str(exc))
            report.outcome, report.reason = "requeued", str(exc)
            return report
        # Kept only once registered: a run that lost its lease at registration purges its candidate.
        kept = (unlearned.checkpoint, mask.mask if mask else None)
        report.version, report.checkpoint_sha256 = (
            registration.version,
            registration.checkpoint.sha256,
        )
        exported = export_audit_records(label, sorted(registration.audit_record_ids.values()))
        by_ticket = {t: exported[r] for t, r in registration.audit_record_ids.items()}
        publish_metrics(label, before.metrics, after.metrics, registration.version)
        publish_links(
            label,
            registration.model_name,
            registration.version,
            registration.checkpoint.uri,
            registration.checkpoint.sha256,
            {registration.audit_record_ids[t]: ref for t, ref in by_ticket.items()},
            registration.chain_head,
        )
        _purge(label, run_id, ids, forget_snapshot, candidates, masks, kept)
        forget_snapshot = None  # purged
        finish(label, ids, "completed", owner)
        publish_deletion_reports(label, ids)
        report.outcome, report.reason = "completed", decision.reason
        return report
    except Exception as exc:
        # The request's fault (bad input, a checkpoint failing verification) is final: rejected,
        # not retried. Anything else is the infrastructure's: failed, and re-queued if allowed.
        fault = request_fault(exc)
        outcome = "rejected" if fault else "failed"
        reason = fault or f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        report.outcome, report.reason = outcome, reason
        log.error("%s %s: %s", label, outcome, reason)
        try:
            finish(label, report.ticket_ids, outcome, owner, reason)
        except Exception as finish_exc:  # noqa: BLE001 - the original error is the one to raise
            log.error("%s: could not mark the tickets %s: %s", label, outcome, finish_exc)
        if fault:
            return report
        raise
    finally:
        if forget_snapshot is not None or (candidates and kept is None):
            _purge(label, run_id, report.ticket_ids, forget_snapshot, candidates, masks, kept)
        purge_after_run(label, sorted({*report.ticket_ids, *report.rejected}), run_id,
                        superseded=report.version is not None)
        report.timings_s["total"] = round(time.perf_counter() - started, 2)


def _purge(
    label: str,
    run_id: str,
    ticket_ids: list[int],
    forget_snapshot: ObjectRef | None,
    candidates: list[CheckpointRef],
    masks: list[ObjectRef],
    kept: tuple[CheckpointRef, ObjectRef | None] | None,
) -> None:
    keep_checkpoint, keep_mask = kept or (None, None)
    purge_scratch(
        label,
        run_id,
        ticket_ids,
        forget_snapshot,
        [c for c in candidates if c != keep_checkpoint],
        [m for m in masks if m != keep_mask],
    )
