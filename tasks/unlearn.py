"""Unlearning stage: noise into the masked weights, masked NPO/GradDiff/PO, candidate checkpoint stored."""

from __future__ import annotations

import dataclasses
import gc
import tempfile
from pathlib import Path

from prefect import get_run_logger, task
from transformers import PreTrainedTokenizerBase

from grin_core.models.checkpoint import save_checkpoint
from grin_core.scoring.mask import Mask
from grin_core.unlearning.unlearn import UnlearnResult, unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from infra.settings import get_settings
from infra.storage import ObjectStore
from policy.round_setting import RoundSetting
from tasks.checkpoint_store import candidate_card, upload_checkpoint
from tasks.contracts import CheckpointRef, ObjectRef, Snapshot, UnlearnOutcome, WorkerStamp
from tasks.inputs import device, load_model, read_bytes, read_json, read_records
from tasks.progress import EpochLog, PrefectProgress
from tasks.progress_checkpoints import ProgressCheckpoints
from tasks.resources import object_store
from tasks.stage_processes import unlearn_on_processes
from tasks.worker_liveness import reports_stage


@task(name="unlearn-weights", task_run_name="unlearn-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def unlearn_weights(
    label: str,
    run_id: str,
    round_no: int,
    parent: CheckpointRef,
    snapshot: Snapshot,
    mask: ObjectRef,
    setting: RoundSetting,
    target_auc: float = 0.5,
) -> UnlearnOutcome:
    """`target_auc`: the line's non-member level; with a holdout part in the eval suite the privacy
    schedule steers the forget set's MIA AUC into a band around it (grin_core/unlearning/privacy_schedule.py)."""
    round_ = _read_round(label, run_id, round_no, parent, snapshot, mask, setting, target_auc)
    store = object_store()
    with tempfile.TemporaryDirectory(prefix="grin-unlearn-") as tmp:
        mask_path = Path(tmp) / "mask.safetensors"
        mask_path.write_bytes(read_bytes(mask))
        if round_.processes > 1:  # no progress checkpoints across processes (settings.stage_processes)
            out, summary = _unlearn_on_processes(round_, mask_path, Path(tmp))
            resume = None
        else:
            out, summary, resume = _unlearn_here(round_, mask_path, store, Path(tmp))
        checkpoint = upload_checkpoint(out, store)
    return UnlearnOutcome(
        checkpoint=checkpoint,
        timings=summary["timings"],
        trainable_params=summary["trainable_params"],
        state_bytes=summary["state_bytes"],
        worker=WorkerStamp.here(device(), get_settings().stage_processes),
        resumed_from_step=resume[1] if resume else None,
        epochs_run=UnlearnOutcome.epochs_of(summary),
        flops=summary.get("flops"),
    )


@dataclasses.dataclass(frozen=True)
class _Round:
    """One round's inputs, read once: its records, its config (after the never-seen fallback), the card
    its checkpoint carries and how many processes it runs on."""

    label: str
    round_no: int
    parent: CheckpointRef
    snapshot: Snapshot
    mask: ObjectRef
    config: UnlearnConfig
    forget: list[dict]
    retain: list[dict]
    holdout: list[dict] | None
    calibration: list[dict] | None
    target_auc: float
    card: dict[str, object]
    processes: int


def _read_round(
    label: str,
    run_id: str,
    round_no: int,
    parent: CheckpointRef,
    snapshot: Snapshot,
    mask: ObjectRef,
    setting: RoundSetting,
    target_auc: float,
) -> _Round:
    """The snapshot's records and eval suite's never-seen parts, the round's config and its candidate card."""
    forget, retain = read_records(snapshot.forget), read_records(snapshot.retain)
    suite = read_json(snapshot.eval_suite)
    holdout, calibration = suite.get("holdout") or None, suite.get("calibration") or None
    config = never_seen_fallback(setting.unlearn_config(), holdout or calibration)
    processes = get_settings().stage_processes
    card = candidate_card(
        setting,
        parent,
        snapshot,
        run_id,
        round_no,
        method=f"GRIN-{setting.method.value.upper()}",
        p=setting.p_percent,
        sigma2=setting.sigma2,
        mask_sha256=mask.sha256,
    )
    return _Round(
        label,
        round_no,
        parent,
        snapshot,
        mask,
        config,
        forget,
        retain,
        holdout,
        calibration,
        target_auc,
        card,
        processes,
    )


def never_seen_fallback(config: UnlearnConfig, never_seen: list | None) -> UnlearnConfig:
    """Profile matching needs never-seen records (the eval suite's holdout or calibration part); a line
    without either (its privacy waived) runs NPO with the loss stop rule instead, and says so."""
    from grin_core.unlearning.objective_registry import OBJECTIVES

    if never_seen or not OBJECTIVES[config.method].profiles:
        return config
    get_run_logger().warning(
        "the eval suite has no holdout or calibration part: objective %r needs never-seen "
        "records, so this round runs npo",
        config.method,
    )
    return dataclasses.replace(config, method="npo", stop_rule="loss")


def _unlearn_on_processes(round_: _Round, mask_path: Path, tmp: Path) -> tuple[Path, dict]:
    """Several processes (stage_processes.py): (checkpoint dir, rank 0's summary)."""
    return unlearn_on_processes(
        round_.label,
        round_.parent,
        round_.forget,
        round_.retain,
        round_.config,
        round_.processes,
        tmp,
        mask_path=mask_path,
        holdout=round_.holdout,
        target_auc=round_.target_auc,
        calibration=round_.calibration,
        card=round_.card,
        grin_config={"parent_sha256": round_.parent.sha256},
    )


def _unlearn_here(round_: _Round, mask_path: Path, store: ObjectStore, tmp: Path):
    """One process: resumable from the tickets' progress checkpoint. (checkpoint dir, summary, resume)."""
    saved = _progress_checkpoints(round_, store)
    model, tokenizer = load_model(round_.parent)
    selected = Mask.load(mask_path, sha256=round_.mask.sha256)
    resume = saved.fetch(tmp / "resume")
    if resume is not None:
        get_run_logger().info(
            "%s: round %d resumes from its progress checkpoint at step %d", round_.label, round_.round_no, resume[1]
        )
    progress = PrefectProgress(
        key=f"unlearning-{round_.label}", description=f"{round_.label}: round {round_.round_no} unlearning"
    )
    epochs = EpochLog(f"{round_.label} round {round_.round_no}")
    result = unlearn(
        model,
        tokenizer,
        round_.forget,
        round_.retain,
        round_.config,
        mask=selected,
        callbacks=[progress, epochs, saved],
        holdout_records=round_.holdout,
        target_auc=round_.target_auc,
        checkpoint_dir=str(tmp / "progress"),
        calibration_records=round_.calibration,
        checkpoint_every_s=get_settings().checkpoint_interval_s,
        resume_from=str(resume[0]) if resume else None,
        fingerprint=saved.fingerprint,
    )
    summary = result.summary()
    out = _save_candidate(result, tokenizer, tmp / "checkpoint", round_)
    summary["trainable_params"] = result.trainable_params
    del result, model
    gc.collect()  # the trainer's `grin-unlearn-*` output directory goes now, not at process exit
    return out, summary, resume


def _progress_checkpoints(round_: _Round, store: ObjectStore) -> ProgressCheckpoints:
    """Keyed by every input the result depends on: a later run of these tickets with the same ones resumes here."""
    return ProgressCheckpoints(
        store,
        round_.parent,
        round_.snapshot,
        eval_suite=round_.snapshot.eval_suite.sha256,
        mask=round_.mask.sha256,
        config=round_.config.to_dict(),
        target_auc=round_.target_auc,
        round=round_.round_no,
    )


def _save_candidate(result: UnlearnResult, tokenizer: PreTrainedTokenizerBase, out: Path, round_: _Round) -> Path:
    """The unlearned model as a checkpoint with the round's card and the run's record, under `out`."""
    save_checkpoint(
        result.model,
        tokenizer,
        out,
        card_info=round_.card,
        grin_config={**result.checkpoint_record(), "parent_sha256": round_.parent.sha256},
    )
    return out
