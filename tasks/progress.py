"""Training progress as a Prefect progress artifact, updated from inside the Trainer loop."""

from __future__ import annotations

import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from transformers import TrainerCallback


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
