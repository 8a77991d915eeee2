"""GRUN stage: a gated intervention trained on the parent as served; the base weights are not touched.

The candidate is an intervention checkpoint (grin_core/unlearning/grun.py) holding every request's module along
the lineage, the parent's included, and naming the base checkpoint it applies to. No scoring stage
and no mask. It runs in one process and keeps no progress checkpoints: a killed run trains again
from the start (a request trains in seconds to minutes: the intervention is a few thousand weights).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import get_run_logger, task

from grin_core.models.checkpoint import file_sha256
from grin_core.unlearning.grun import INTERVENTIONS, THREAT_MODEL, save_grun_checkpoint
from grin_core.unlearning.grun_train import grun_unlearn
from infra.settings import get_settings
from policy.round_setting import RoundSetting
from tasks.checkpoint_store import candidate_card, upload_checkpoint
from tasks.contracts import CheckpointRef, Snapshot, UnlearnOutcome, WorkerStamp
from tasks.inputs import base_checkpoint, device, load_model, read_json, read_records
from tasks.progress import EpochLog, PrefectProgress
from tasks.resources import object_store
from tasks.worker_liveness import reports_stage


@task(name="train-intervention", task_run_name="grun-{label}", persist_result=True)
@reports_stage
def train_intervention(
    label: str,
    run_id: str,
    round_no: int,
    parent: CheckpointRef,
    snapshot: Snapshot,
    setting: RoundSetting,
    target_auc: float = 0.5,
) -> UnlearnOutcome:
    """`target_auc` as in unlearn_weights: with a holdout part the privacy schedule steers into it."""
    if get_settings().stage_processes > 1:
        get_run_logger().info("%s: GRUN trains in one process (GRIN_STAGE_PROCESSES applies to GRIN)", label)
    forget, retain = read_records(snapshot.forget), read_records(snapshot.retain)
    suite = read_json(snapshot.eval_suite)
    holdout, calibration = suite.get("holdout") or None, suite.get("calibration") or None
    config = setting.grun_config()
    base = base_checkpoint(parent) or parent
    model, tokenizer = load_model(parent)
    progress = PrefectProgress(key=f"unlearning-{label}", description=f"{label}: round {round_no} GRUN")
    result = grun_unlearn(
        model,
        tokenizer,
        forget,
        retain,
        config,
        holdout_records=holdout,
        target_auc=target_auc,
        calibration_records=calibration,
        callbacks=[progress, EpochLog(f"{label} round {round_no}")],
    )
    summary = result.summary()
    card = candidate_card(setting, parent, snapshot, run_id, round_no, method="GRUN")
    with tempfile.TemporaryDirectory(prefix="grin-grun-") as tmp:
        out = Path(tmp) / "checkpoint"
        save_grun_checkpoint(
            result.model,
            out,
            base=base.model_dump(),
            card_info=card,
            extra={
                "parent_sha256": parent.sha256,
                "unlearning": {k: summary[k] for k in ("config", "layers", "timings", "history", "probes")},
            },
        )
        checkpoint = upload_checkpoint(out, object_store())
        intervention_sha256 = file_sha256(out / INTERVENTIONS)
    get_run_logger().info(
        "%s: round %d trained %d intervention parameters; %s", label, round_no, result.trainable_params, THREAT_MODEL
    )
    return UnlearnOutcome(
        checkpoint=checkpoint,
        base=base,
        intervention_sha256=intervention_sha256,
        timings=summary["timings"],
        trainable_params=result.trainable_params,
        state_bytes=summary["state_bytes"],
        worker=WorkerStamp.here(device()),
        epochs_run=UnlearnOutcome.epochs_of(summary),
    )
