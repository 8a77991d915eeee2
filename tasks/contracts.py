"""What crosses a task boundary, and the report a ticket run returns: references, hashes, counts and
numbers, never record text. No torch: the round's setting comes from policy/, whose defaults are
grin_core's torch-free configs.

Prefect shows task parameters and results in its UI and persists them, so a forget set travels
only as the URI and sha256 of its snapshot.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from pydantic import BaseModel, ConfigDict

from policy.gate import GateDecision
from policy.round_setting import RoundRecord, RoundSetting


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectRef(Frozen):
    """An object in a store and the sha256 of its bytes."""

    uri: str
    sha256: str


class CheckpointRef(Frozen):
    """A checkpoint directory in a store: `uri` is its prefix, `sha256` its manifest's hash."""

    uri: str
    sha256: str


class WorkerStamp(Frozen):
    """Which process did a piece of ML work, so the audit record can say where it ran."""

    pid: int
    host: str
    device: str
    processes: int = 1  # ranks the stage ran on (settings.stage_processes); pid is their launcher's

    @classmethod
    def here(cls, device: str, processes: int = 1) -> WorkerStamp:
        return cls(pid=os.getpid(), host=socket.gethostname(), device=device, processes=processes)


class Deletion(Frozen):
    """One ticket's forget set removed along a lineage, by id and hash only."""

    ticket_id: int
    forget_sha256: str


class BaseVersion(Frozen):
    """A registered version a line is fine-tuned from, as the fine-tuned version's lineage records it:
    which version, its checkpoint, and the deletions along the base's own line."""

    model: str
    version: int
    checkpoint: CheckpointRef
    lineage_deletions: list[Deletion] = []


class ParentVersion(Frozen):
    """The registered version a run unlearns from.

    `lineage_deletions`: every deletion along its lineage; `origin_metrics`: the line's first
    version's metrics (None when the parent is that version: its own numbers are measured).
    """

    model_name: str
    version_id: int
    version: int
    checkpoint: CheckpointRef
    training_manifest_uri: str | None
    eval_suite_uri: str | None
    training_manifest_sha256: str | None = None
    lineage_deletions: list[Deletion] = []
    origin_version: int | None = None
    origin_metrics: dict[str, float] | None = None


class RunPlan(Frozen):
    """Which tickets one run answers, from which version, under which policy and settings."""

    ticket_ids: list[int]
    parent: ParentVersion
    setting: RoundSetting
    policy: dict[str, Any]
    released: dict[int, str] = {}  # tickets handed back to the queue for a run of their own
    parent_ref: str = ""  # what `parent` was resolved from; registration checks it still resolves there


class Snapshot(Frozen):
    """The run's data, content-hashed. `forget` (records with their key phrases) sits in scratch
    and is purged after the run; `retain` (training sample) and `eval_suite` (retain / general
    knowledge parts, none overlapping the forget set) are kept for the audit."""

    forget: ObjectRef
    retain: ObjectRef
    eval_suite: ObjectRef
    forget_count: int
    retain_count: int
    keyword_count: int
    eval_counts: dict[str, int]
    # The manifest the run's version will stand on (the parent's minus every forget record, by
    # normalised question/answer), content-addressed under `manifests/`; None without a manifest.
    manifest: ObjectRef | None = None
    manifest_count: int | None = None
    deletions: list[Deletion] = []  # this run's tickets, each with the sha256 of its forget set
    lineage_deletions: list[Deletion] = []  # the parent's lineage's, then this run's
    # ticket id -> `text_key` hashes of its forget questions and answers: what an exact rebuild's audit
    # re-derives the lineage manifest from once the forget text is purged (hashes only)
    forget_keys: dict[int, list[str]] = {}


class MaskOutcome(Frozen):
    mask: ObjectRef
    selected: int
    eligible: int
    stats: dict[str, Any]
    scoring_s: float
    worker: WorkerStamp


class UnlearnOutcome(Frozen):
    checkpoint: CheckpointRef
    base: CheckpointRef | None = None  # GRUN: the full-weight checkpoint `checkpoint`'s intervention applies to
    intervention_sha256: str | None = None  # GRUN: sha256 of the checkpoint's interventions.safetensors
    timings: dict[str, float]
    trainable_params: int
    state_bytes: dict[str, Any]
    worker: WorkerStamp
    resumed_from_step: int | None = None  # the progress checkpoint this run continued from
    epochs_run: float | None = None  # what the privacy schedule ran (it stops once in band)
    flops: dict[str, Any] | None = None  # model FLOPs by stage (grin_core/runtime/flops.py)

    @staticmethod
    def epochs_of(summary: dict) -> float | None:
        """The epochs a run's summary says ran: its last probe's (the schedule), else its last log's."""
        epochs = [e["epoch"] for e in summary.get("probes") or [] if "epoch" in e]
        epochs = epochs or [e["epoch"] for e in summary.get("history") or [] if "epoch" in e]
        return max(epochs) if epochs else None


class EvalOutcome(Frozen):
    metrics: dict[str, float]
    seconds: float
    worker: WorkerStamp


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
