"""The scoring and unlearning stages on several processes (`GRIN_STAGE_PROCESSES` > 1).

The ranks run grin_core.runtime.stage_job in their own processes; this module lays out the job from the
stage's verified inputs, relays rank 0's per-epoch numbers to the run log and reads the outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import get_run_logger

from grin_core.runtime.stage_job import CHECKPOINT, RESULT, SCORED_MASK, launch, write_job
from grin_core.runtime.steps import StepCallback
from grin_core.scoring.mask import Mask
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef


def _run(job: Path, label: str, processes: int, on_step: StepCallback | None = None) -> None:
    """Launch the job; rank 0's steps go to `on_step` (the stage's progress), its epochs to the log."""
    logger = get_run_logger()
    logger.info("%s: %s on %d processes", label, json.loads((job / "job.json").read_text())["stage"], processes)

    def relay(numbers: dict) -> None:
        if on_step is not None and "step" in numbers:
            on_step(numbers["step"], numbers["done"], numbers["total"])
        else:
            logger.info("%s: %s", label, json.dumps(numbers))

    launch(job, processes, log=relay)


def score_on_processes(
    label: str,
    parent: CheckpointRef,
    forget: Sequence[Mapping],
    retain: Sequence[Mapping],
    config: UnlearnConfig,
    processes: int,
    workdir: Path,
    on_step: StepCallback | None = None,
) -> Mask:
    job = write_job(workdir / "score-job", "score", fetch_checkpoint(parent), forget, retain, config.to_dict())
    _run(job, label, processes, on_step)
    return Mask.load(job / SCORED_MASK)


def unlearn_on_processes(
    label: str,
    parent: CheckpointRef,
    forget: Sequence[Mapping],
    retain: Sequence[Mapping],
    config: UnlearnConfig,
    processes: int,
    workdir: Path,
    *,
    mask_path: Path,
    holdout: Sequence[Mapping] | None,
    target_auc: float,
    card: Mapping,
    calibration: Sequence[Mapping] | None = None,
    grin_config: Mapping,
) -> tuple[Path, dict]:
    """(the unlearned checkpoint directory, rank 0's result summary)."""
    job = write_job(
        workdir / "unlearn-job",
        "unlearn",
        fetch_checkpoint(parent),
        forget,
        retain,
        config.to_dict(),
        holdout=holdout,
        calibration=calibration,
        mask_path=mask_path,
        target_auc=target_auc,
        card=card,
        grin_config=grin_config,
    )
    _run(job, label, processes)
    return job / CHECKPOINT, json.loads((job / RESULT).read_text())
