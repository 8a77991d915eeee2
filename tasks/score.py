"""GRI scoring stage: the parent's weights ranked by forget/retain gradient ratio, top p% as a mask.

The mask is also kept with the tickets' progress (tasks/progress_checkpoints.py): a reclaimed
ticket's next run takes it instead of scoring again, so its unlearning resumes on the same mask
(scores that tie at the top-p threshold need not be selected alike by another process)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from prefect import get_run_logger, task

from grin_core.unlearning.unlearn import score_and_select
from infra.settings import get_settings
from policy.round_setting import RoundSetting
from tasks.contracts import CheckpointRef, MaskOutcome, ObjectRef, Snapshot, WorkerStamp
from tasks.inputs import device, load_model, read_records
from tasks.progress import StageSteps
from tasks.progress_checkpoints import ProgressCheckpoints
from tasks.resources import object_store
from tasks.stage_processes import score_on_processes
from tasks.worker_liveness import reports_stage


@task(name="score-weights", task_run_name="score-{label}", persist_result=True)
@reports_stage  # the worker's heartbeat names this stage while it runs
def score_weights(
    label: str, run_id: str, round_no: int, parent: CheckpointRef, snapshot: Snapshot, setting: RoundSetting
) -> MaskOutcome:
    store = object_store()
    # `spec`: the fingerprint's key since the first progress checkpoints (a renamed key would orphan them)
    kept = ProgressCheckpoints(store, parent, snapshot, spec=setting.model_dump(mode="json"), stage="scoring")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grin-mask-") as tmp:
        path = Path(tmp) / "mask.safetensors"
        mask = kept.fetch_mask(path)
        if mask is None:
            forget, retain = read_records(snapshot.forget), read_records(snapshot.retain)
            config, processes = setting.unlearn_config(), get_settings().stage_processes
            steps = StageSteps(key=f"scoring-{label}", label=f"{label} round {round_no} scoring")
            if processes > 1:  # rank 0's steps come back through the launcher
                mask = score_on_processes(
                    label, parent, forget, retain, config, processes, Path(tmp), on_step=steps.within(0.0, 1.0)
                )
            else:
                model, tokenizer = load_model(parent)
                mask = score_and_select(model, tokenizer, forget, retain, config, on_step=steps.within(0.0, 1.0))
            steps.finish()
            mask.save(path)
            kept.keep_mask(path)
        else:
            get_run_logger().info("%s: round %d takes the mask an earlier run of its tickets scored", label, round_no)
        scoring_s = time.perf_counter() - started
        stored = store.put_file(f"runs/{run_id}/mask-round{round_no}.safetensors", path)
    return MaskOutcome(
        mask=ObjectRef(uri=stored.uri, sha256=stored.sha256),
        selected=mask.k,
        eligible=mask.n_eligible,
        stats={k: v for k, v in mask.stats().items() if k != "by_tensor"},
        scoring_s=round(scoring_s, 3),
        worker=WorkerStamp.here(device(), get_settings().stage_processes),
    )
