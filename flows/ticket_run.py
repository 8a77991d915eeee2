"""One run of the ticket state machine, as an object: the tickets it holds, what it has made, and
its named steps. The allowed status changes are the table `infra.queue.TRANSITIONS`; this class
makes every change a run makes: `advance` (`assemble`, and `stage` before each ML stage), the
`registered` transition inside `register_version` (`register`), and `finish` (the run's end:
completed, needs_review, rejected, failed or requeued).

    answer = assemble → baseline → [nothing to forget → completed]
                      → ladder (gated rounds: score → unlearn → evaluate → gate)
                      → register → completed   |   needs_review   |   fail (rejected / failed)
             and always: clean up (scratch copies, candidates that were not registered)

The run only orchestrates: tasks do the I/O, the ML stages run where `run_ml_stage` sends them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import Task, get_run_logger
from prefect.runtime import flow_run

from infra.errors import ParentMovedError
from infra.run_ids import new_run_id
from infra.ticket_status import TicketStatus
from policy.gate import GateDecision, non_member_auc, nothing_to_forget
from policy.gate_policy import GatePolicy
from policy.ladder import NextRound, next_round
from policy.round_setting import RoundRecord, RoundSetting
from tasks.artifacts import publish_deletion_reports, publish_links, publish_metrics
from tasks.assemble import assemble_sets
from tasks.contracts import (
    CheckpointRef,
    EvalOutcome,
    MaskOutcome,
    ObjectRef,
    RunPlan,
    RunReport,
    Snapshot,
    UnlearnOutcome,
)
from tasks.dispatch import run_ml_stage
from tasks.evaluate import evaluate_checkpoint
from tasks.faults import request_fault
from tasks.gate import apply_gate
from tasks.grun import train_intervention
from tasks.plan import plan_run
from tasks.purge import purge_after_run, purge_scratch
from tasks.register import export_audit_records, record_nothing_to_forget, register_version
from tasks.score import score_weights
from tasks.ticket_state import advance, finish
from tasks.unlearn import unlearn_weights

S = TicketStatus


@dataclass(frozen=True)
class Round:
    """One gated round: its setting, the scoring whose mask it unlearned with (None for GRUN), and the verdict."""

    number: int
    setting: RoundSetting
    scoring: MaskOutcome | None
    unlearned: UnlearnOutcome
    after: EvalOutcome
    decision: GateDecision


@dataclass(frozen=True)
class Leftovers:
    """What a run still has to purge: the forget snapshot (unless purged) and every candidate and mask
    that was not registered."""

    forget_snapshot: ObjectRef | None
    checkpoints: list[CheckpointRef]
    masks: list[ObjectRef]


class TicketRun:
    """Answer tickets this run holds under `owner`'s lease (`answer`), one named step at a time."""

    def __init__(self, label: str, ticket_ids: list[int], owner: str) -> None:
        self.label, self.owner = label, owner
        self.run_id = new_run_id(label)
        self.started = time.perf_counter()
        self.report = RunReport(label=label, ticket_ids=list(ticket_ids), outcome="failed")
        self.plan: RunPlan | None = None
        self.snapshot: Snapshot | None = None
        self.forget_snapshot: ObjectRef | None = None  # the scratch copy of the forget set, until purged
        self.candidates: list[CheckpointRef] = []
        self.masks: list[ObjectRef] = []
        self.kept: tuple[CheckpointRef, ObjectRef | None] | None = None  # the registered candidate, its mask
        self.tried: list[tuple[RoundSetting, GateDecision]] = []

    @property
    def ticket_ids(self) -> list[int]:
        """The tickets still answered by this run (planned, not rejected)."""
        return self.plan.ticket_ids

    @property
    def policy(self) -> GatePolicy:
        return GatePolicy(**self.plan.policy)

    def answer(self) -> RunReport:
        """The whole run (see the module docstring); its report. Raises on an infrastructure error,
        after marking the tickets failed (the flow's retry policy and the queue's attempts decide)."""
        try:
            if self.assemble():
                before = self.baseline()
                if not self.nothing_to_forget(before):
                    last = self.ladder(before)
                    if last.decision.passed:
                        self.register(before, last)
                    else:
                        self.needs_review(before, last)
            return self.report
        except Exception as exc:
            if self.fail(exc):
                return self.report
            raise
        finally:
            self.clean_up()

    # -- the steps

    def assemble(self) -> bool:
        """Plan the run, then snapshot its forget and retain sets; False when every ticket was rejected."""
        report = self.report
        self.plan = plan_run(self.label, report.ticket_ids, self.owner)
        report.ticket_ids, report.released = self.plan.ticket_ids, self.plan.released
        report.model, report.parent_version = self.plan.parent.model_name, self.plan.parent.version
        advance(self.label, self.ticket_ids, S.assembling, self.owner)
        assembly = assemble_sets(self.label, self.run_id, self.plan)
        for ticket_id, reason in assembly.rejected.items():
            finish(self.label, [ticket_id], "rejected", self.owner, reason)
        report.rejected = assembly.rejected
        ids = [i for i in self.ticket_ids if i not in assembly.rejected]
        self.plan = self.plan.model_copy(update={"ticket_ids": ids})
        if assembly.snapshot is None or not ids:
            report.outcome, report.reason = "rejected", "; ".join(sorted(set(assembly.rejected.values())))
            return False
        self.snapshot = assembly.snapshot
        self.forget_snapshot = self.snapshot.forget
        report.timings_s["assemble"] = self._seconds()
        get_run_logger().info(
            "%s: %d forget, %d retain records; unlearning %s v%d",
            self.label,
            self.snapshot.forget_count,
            self.snapshot.retain_count,
            self.plan.parent.model_name,
            self.plan.parent.version,
        )
        return True

    def baseline(self) -> EvalOutcome:
        """The parent version's numbers on this run's suite (the tickets stay `assembling`)."""
        before = self.stage(
            None,
            None,
            evaluate_checkpoint,
            label=f"{self.label}-parent",
            checkpoint=self.plan.parent.checkpoint,
            snapshot=self.snapshot,
            probes=self.policy.probes,
        )
        self.report.before = before.metrics
        return before

    def nothing_to_forget(self, before: EvalOutcome) -> bool:
        """Complete the tickets without a new version when the parent never learned the forget set:
        unlearning it could only do damage."""
        never_learned = nothing_to_forget(self.policy, before.metrics)
        if never_learned is None:
            return False
        record_nothing_to_forget(self.label, self.plan, self.snapshot, before, never_learned, _flow_run_id())
        finish(self.label, self.ticket_ids, "completed", self.owner)
        publish_deletion_reports(self.label, self.ticket_ids)
        self.report.outcome, self.report.reason, self.report.gate = "completed", never_learned.reason, never_learned
        return True

    def ladder(self, before: EvalOutcome) -> Round:
        """Gated rounds from the plan's setting, each as the ladder sets it, until one passes or the
        ladder ends; the last round."""
        setting, scoring, rescore = self.plan.setting, None, self.plan.setting.selects_weights
        for number in range(1, self.policy.max_rounds + 1):
            last = self.gated_round(number, setting, scoring, rescore, before)
            nxt = self.retry(last)
            if nxt is None:
                break
            setting, scoring, rescore = nxt.setting, last.scoring, nxt.rescore
            get_run_logger().info(
                "%s: gate failed in round %d (%s); retrying: %s",
                self.label,
                number,
                last.decision.reason,
                setting.describe(),
            )
        self.report.timings_s["unlearn_and_evaluate"] = round(
            time.perf_counter() - self.started - self.report.timings_s["assemble"], 2
        )
        return last

    def gated_round(
        self, number: int, setting: RoundSetting, scoring: MaskOutcome | None, rescore: bool, before: EvalOutcome
    ) -> Round:
        """Score (when `rescore`; else unlearn with `scoring`'s mask), unlearn, evaluate and gate one candidate."""
        common = {
            "label": self.label,
            "run_id": self.run_id,
            "round_no": number,
            "parent": self.plan.parent.checkpoint,
            "snapshot": self.snapshot,
            "setting": setting,
        }
        if rescore:
            scoring = self.stage(
                S.scoring, f"round {number}: top {setting.p_percent:g}% of weights", score_weights, **common
            )
            self.masks.append(scoring.mask)
            self.report.workers["score"] = scoring.worker.pid
        ml = (
            {"task": unlearn_weights, "mask": scoring.mask} if setting.selects_weights else {"task": train_intervention}
        )
        unlearned = self.stage(
            S.unlearning,
            f"round {number}: within {setting.max_epochs} epochs",
            **ml,
            **common,
            target_auc=non_member_auc(self.policy),
        )
        self.candidates.append(unlearned.checkpoint)
        self.report.workers["unlearn"] = unlearned.worker.pid
        if unlearned.resumed_from_step is not None:
            self.report.resumed[number] = unlearned.resumed_from_step
        after = self.stage(
            S.evaluating,
            f"round {number}",
            evaluate_checkpoint,
            label=f"{self.label}-round{number}",
            checkpoint=unlearned.checkpoint,
            snapshot=self.snapshot,
            relearn=self.policy.relearn_probe,
            seed=setting.seed,
            probes=self.policy.probes,
        )
        self.report.workers["evaluate"] = after.worker.pid
        decision = apply_gate(
            self.label,
            number,
            setting,
            self.plan.policy,
            before.metrics,
            after.metrics,
            self.plan.parent.origin_metrics or before.metrics,
            epochs_run=unlearned.epochs_run,
        )
        self.report.rounds.append(RoundRecord.of(number, setting, decision, unlearned.epochs_run))
        self.report.after, self.report.gate = after.metrics, decision
        return Round(number, setting, scoring, unlearned, after, decision)

    def retry(self, last: Round) -> NextRound | None:
        """The ladder's next round after `last` (policy.ladder), or None: it passed or the ladder ended."""
        self.tried.append((last.setting, last.decision))
        return next_round(self.policy, self.tried)

    def needs_review(self, before: EvalOutcome, last: Round) -> None:
        """The gate failed at the top of the ladder: nothing is registered, a person looks."""
        publish_metrics(self.label, before.metrics, last.after.metrics, None)
        finish(
            self.label,
            self.ticket_ids,
            "needs_review",
            self.owner,
            f"gate failed after {len(self.report.rounds)} round(s): {last.decision.reason}",
        )
        self.report.outcome, self.report.reason = "needs_review", last.decision.reason

    def register(self, before: EvalOutcome, last: Round) -> None:
        """The passing candidate becomes the next version (one audit record per ticket), its links are
        published, every other copy is purged and the tickets complete. A run that lost the race to
        register (the parent moved) hands its tickets back to be planned again."""
        try:
            registration = register_version(
                self.label,
                self.owner,
                self.plan,
                self.snapshot,
                last.scoring,
                last.unlearned,
                last.setting,
                before,
                last.after,
                last.decision,
                self.report.rounds,
                _flow_run_id(),
            )
        except ParentMovedError as exc:  # lost the race: its candidate is purged, the tickets re-planned
            get_run_logger().warning("%s: %s", self.label, exc)
            finish(self.label, self.ticket_ids, "requeued", self.owner, str(exc))
            self.report.outcome, self.report.reason = "requeued", str(exc)
            return
        # Kept only once registered: a run that lost its lease at registration purges its candidate.
        self.kept = (last.unlearned.checkpoint, last.scoring.mask if last.scoring else None)
        self.report.version, self.report.checkpoint_sha256 = registration.version, registration.checkpoint.sha256
        exported = export_audit_records(self.label, sorted(registration.audit_record_ids.values()))
        by_ticket = {t: exported[r] for t, r in registration.audit_record_ids.items()}
        publish_metrics(self.label, before.metrics, last.after.metrics, registration.version)
        publish_links(
            self.label,
            registration.model_name,
            registration.version,
            registration.checkpoint.uri,
            registration.checkpoint.sha256,
            {registration.audit_record_ids[t]: ref for t, ref in by_ticket.items()},
            registration.chain_head,
        )
        self.purge(self.ticket_ids, self.leftovers())
        self.forget_snapshot = None  # purged
        finish(self.label, self.ticket_ids, "completed", self.owner)
        publish_deletion_reports(self.label, self.ticket_ids)
        self.report.outcome, self.report.reason = "completed", last.decision.reason

    def fail(self, exc: Exception) -> bool:
        """End the run on an error. The request's fault (bad input, a checkpoint failing verification)
        is final: rejected, not retried (True). Anything else is the infrastructure's: failed, and
        re-queued if allowed (False: the caller re-raises)."""
        log = get_run_logger()
        fault = request_fault(exc)
        outcome = "rejected" if fault else "failed"
        reason = fault or f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        self.report.outcome, self.report.reason = outcome, reason
        log.error("%s %s: %s", self.label, outcome, reason)
        try:
            finish(self.label, self.report.ticket_ids, outcome, self.owner, reason)
        except Exception as finish_exc:  # noqa: BLE001 - the original error is the one to raise
            log.error("%s: could not mark the tickets %s: %s", self.label, outcome, finish_exc)
        return bool(fault)

    def clean_up(self) -> None:
        """Whatever the outcome: purge what the run left, then the tickets' forget copies (and, after a
        registration, the superseded versions past their grace period)."""
        leftovers = self.leftovers()
        if leftovers is not None:
            self.purge(self.report.ticket_ids, leftovers)
        purge_after_run(
            self.label,
            sorted({*self.report.ticket_ids, *self.report.rejected}),
            self.run_id,
            superseded=self.report.version is not None,
        )
        self.report.timings_s["total"] = self._seconds()

    # -- the helpers the steps share

    def stage(self, status: TicketStatus | None, reason: str | None, task: Task, **parameters: Any) -> Any:
        """Move the run's tickets to `status` (None: they stay where they are), then run the ML stage
        `task` where ML work runs (tasks.dispatch)."""
        if status is not None:
            advance(self.label, self.ticket_ids, status, self.owner, reason)
        return run_ml_stage(task, **parameters)

    def leftovers(self) -> Leftovers | None:
        """What the run must still purge: the forget snapshot unless purged, and every candidate and
        mask but the registered one's; None when the snapshot is gone and a candidate was kept (or none
        was made)."""
        if self.forget_snapshot is None and not (self.candidates and self.kept is None):
            return None
        keep_checkpoint, keep_mask = self.kept or (None, None)
        return Leftovers(
            self.forget_snapshot,
            [c for c in self.candidates if c != keep_checkpoint],
            [m for m in self.masks if m != keep_mask],
        )

    def purge(self, ticket_ids: list[int], leftovers: Leftovers) -> None:
        purge_scratch(
            self.label, self.run_id, ticket_ids, leftovers.forget_snapshot, leftovers.checkpoints, leftovers.masks
        )

    def _seconds(self) -> float:
        return round(time.perf_counter() - self.started, 2)


def _flow_run_id() -> str | None:
    return str(flow_run.id) if flow_run.id else None
