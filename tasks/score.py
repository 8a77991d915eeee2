"""GRI scoring stage: the parent's weights ranked by forget/retain gradient ratio, top p% as a mask."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from prefect import task

from grin_core.unlearn import UnlearnConfig, score_and_select
from tasks.contracts import CheckpointRef, MaskOutcome, ObjectRef, RoundSpec, Snapshot, WorkerStamp
from tasks.inputs import device, load_model, read_records
from tasks.resources import object_store


@task(name="score-weights", task_run_name="score-{label}", persist_result=True)
def score_weights(label: str, run_id: str, round_no: int, parent: CheckpointRef, snapshot: Snapshot,
                  spec: RoundSpec) -> MaskOutcome:
    model, tokenizer = load_model(parent)
    forget, retain = read_records(snapshot.forget), read_records(snapshot.retain)
    started = time.perf_counter()
    mask = score_and_select(model, tokenizer, forget, retain, UnlearnConfig(**spec.unlearn_kwargs()))
    scoring_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="grin-mask-") as tmp:
        path = Path(tmp) / "mask.safetensors"
        mask.save(path)
        stored = object_store().put_file(f"runs/{run_id}/mask-round{round_no}.safetensors", path)
    return MaskOutcome(
        mask=ObjectRef(uri=stored.uri, sha256=stored.sha256),
        selected=mask.k,
        eligible=mask.n_eligible,
        stats={k: v for k, v in mask.stats().items() if k != "by_tensor"},
        scoring_s=round(scoring_s, 3),
        worker=WorkerStamp.here(device()),
    )
