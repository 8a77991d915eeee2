"""Stage progress as a Prefect progress artifact and as log lines: epochs from inside the Trainer
loop, steps (grin_core/runtime/steps.py) of evaluation and scoring.

The log lines (epoch, loss, ETA; step n/N) reach the terminal of `grin demo` / `grin ticket
process` and the run's logs in the UI; a long stage is never silent for more than an epoch or a step."""

from __future__ import annotations

import time

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from transformers import TrainerCallback

from grin_core.runtime.steps import StepCallback


class PrefectProgress(TrainerCallback):
    """Shows the share of optimizer steps done; updates at most every `every_s` seconds."""

    def __init__(self, key: str, description: str, every_s: float = 2.0) -> None:
        self.key, self.description, self.every_s = key, description, every_s
        self.artifact_id = None
        self._last = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.artifact_id = create_progress_artifact(progress=0.0, key=self.key, description=self.description)

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        if self.artifact_id and state.max_steps and now - self._last >= self.every_s:
            self._last = now
            update_progress_artifact(self.artifact_id, progress=100.0 * state.global_step / state.max_steps)

    def on_train_end(self, args, state, control, **kwargs):
        if self.artifact_id:
            update_progress_artifact(self.artifact_id, progress=100.0)


class EpochLog(TrainerCallback):
    """Logs one line per epoch: epoch n/N, the loss (and its parts: the unlearning trainers log them),
    seconds so far and an ETA at the current pace (an upper bound when the privacy schedule may stop early)."""

    def __init__(self, label: str) -> None:
        self.label, self._started = label, time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.max_steps:
            return
        elapsed = time.monotonic() - self._started
        done = state.global_step / state.max_steps
        eta = elapsed * (1 - done) / done if done else float("nan")
        parts = ", ".join(
            f"{k} {v:.3g}"
            for k, v in logs.items()
            if k in ("forget_logp", "retain_nll", "gate_bce", "repair_nll", "forget_nll")
        )
        get_run_logger().info(
            "%s: epoch %d/%d, loss %.4g%s, %.0f s, ETA <= %.0f s",
            self.label,
            round(state.epoch or 0),
            round(args.num_train_epochs),
            logs["loss"],
            f" ({parts})" if parts else "",
            elapsed,
            eta,
        )


class StageSteps:
    """A log line per step of a stage and one progress artifact over all its parts.

    A stage made of several pieces of work (evaluation: metrics, then probes) gives each its share
    of the bar: `within(0.0, 0.7)` is the callback for the first, `within(0.7, 1.0)` for the next."""

    def __init__(self, key: str, label: str) -> None:
        self.label, self._started = label, time.monotonic()
        self.artifact_id = create_progress_artifact(progress=0.0, key=key, description=f"{label}: steps done")

    def within(self, start: float, end: float) -> StepCallback:
        def on_step(what: str, done: int, total: int) -> None:
            get_run_logger().info(
                "%s: %s (step %d/%d, %.0f s)", self.label, what, done + 1, total, time.monotonic() - self._started
            )
            update_progress_artifact(self.artifact_id, progress=100.0 * (start + (end - start) * done / total))

        return on_step

    def finish(self) -> None:
        update_progress_artifact(self.artifact_id, progress=100.0)
