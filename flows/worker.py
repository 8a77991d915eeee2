"""The GPU worker: a long-lived process that serves the ML stages as Prefect background tasks.

It keeps torch, the model code and the device warm between tickets; each stage loads the
checkpoint it is given (verified by its manifest) and returns references, never weights.
"""

from __future__ import annotations

import logging

from prefect.task_worker import serve

from tasks.calibrate import calibrate_line
from tasks.evaluate import evaluate_checkpoint
from tasks.finetune import finetune_target
from tasks.grun import train_intervention
from tasks.reclaim import sweep_now
from tasks.score import score_weights
from tasks.train import train_target
from tasks.unlearn import unlearn_weights

ML_STAGES = (
    score_weights,
    unlearn_weights,
    train_intervention,
    evaluate_checkpoint,
    train_target,
    finetune_target,
    calibrate_line,
)


def run_worker(limit: int = 1) -> None:
    """Serve the ML stages until interrupted; `limit` stages at once (one per GPU is the safe default).

    A sweep of lapsed leases runs first: a worker restarted after a crash hands the tickets it
    was working on back to the queue instead of leaving them stuck in their stage.
    """
    report = sweep_now()
    if report.tickets:
        logging.getLogger(__name__).warning(
            "reclaimed tickets at worker start: requeued %s, failed %s, completed %s",
            report.requeued,
            report.failed,
            report.completed,
        )
    serve(*ML_STAGES, limit=limit)
