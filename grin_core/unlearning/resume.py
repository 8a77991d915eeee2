"""Resumable unlearning: what a progress checkpoint holds beyond what `transformers.Trainer` saves.

The Trainer's own checkpoint mechanism does the bulk: optimizer and scheduler state, RNG states
(python, numpy, torch, CUDA) and `trainer_state.json` (global step, epoch, log history), and its
`train(resume_from_checkpoint=...)` fast-forwards to the saved step. What it cannot know is kept
here, in two files next to it:

- `trainable.safetensors`: the trainable tensors alone (with a sparse mask, the k selected values)
  instead of the whole model: a 7B model's checkpoint would otherwise be the whole model per save.
- `grin_state.pt`: the fingerprint of the run it belongs to, the forget/retain collator's retain
  stream (generator state and queue), the trainer's phase and the privacy schedule's state.

Checkpoints are taken at epoch ends only: the privacy schedule decides per epoch, and accelerate's
dataloader collates one batch ahead, so the retain stream's state is exact only where an epoch
ends. Forget sets are small (an epoch is one pass over them), so a kill loses at most one epoch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

TRAINABLE_FILE = "trainable.safetensors"
STATE_FILE = "grin_state.pt"


class ResumeMismatchError(ValueError):
    """A progress checkpoint made by another run (other inputs, mask or settings) cannot be resumed."""


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A stable hash of everything a run's result depends on; a checkpoint resumes only its own run."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def trainable_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def save_progress(trainer, output_dir: str | Path) -> None:
    """Write the trainable tensors and the grin state of `trainer` (a ForgetRetainTrainer) to `output_dir`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"t{i:05d}": t.detach().cpu().contiguous() for i, t in enumerate(trainable_tensors(trainer.model))}
    save_file(tensors, str(output_dir / TRAINABLE_FILE))
    collator = trainer.data_collator
    state = {
        "fingerprint": trainer.fingerprint,
        "phase": trainer.phase,
        "weights": (trainer.forget_weight, trainer.retain_weight),
        "retain_generator": collator.generator.get_state(),
        "retain_queue": list(collator.queue),
        "schedule": trainer.schedule.state_dict() if trainer.schedule is not None else None,
    }
    torch.save(state, output_dir / STATE_FILE)


def load_progress(trainer, checkpoint_dir: str | Path) -> None:
    """Restore what `save_progress` wrote; ResumeMismatchError if it belongs to another run."""
    checkpoint_dir = Path(checkpoint_dir)
    state = torch.load(checkpoint_dir / STATE_FILE, weights_only=True)
    if state["fingerprint"] != trainer.fingerprint:
        raise ResumeMismatchError("the progress checkpoint was made by another run (inputs, mask or settings differ)")
    saved = load_file(str(checkpoint_dir / TRAINABLE_FILE))
    params = trainable_tensors(trainer.model)
    if len(saved) != len(params) or any(saved[f"t{i:05d}"].shape != p.shape for i, p in enumerate(params)):
        raise ResumeMismatchError("the progress checkpoint's trainable tensors do not match this run's mask")
    with torch.no_grad():
        for i, param in enumerate(params):
            param.copy_(saved[f"t{i:05d}"].to(param.device))
    trainer.phase = state["phase"]
    trainer.forget_weight, trainer.retain_weight = state["weights"]
    trainer.data_collator.generator.set_state(state["retain_generator"])
    trainer.data_collator.queue = list(state["retain_queue"])
    if trainer.schedule is not None and state["schedule"] is not None:
        trainer.schedule.load_state_dict(state["schedule"])


class SaveAtIntervals(TrainerCallback):
    """Keeps the Trainer's per-epoch save only once `seconds` have passed since the last one (0: every
    epoch), and never at the epoch training stops: a kill loses at most that long plus one epoch, and
    a small model's second-long epochs do not each pay for a checkpoint."""

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("checkpoint interval must be >= 0 seconds")
        self.seconds = seconds
        self.last = time.monotonic()

    def on_epoch_end(self, args, state, control, **kwargs):
        due = time.monotonic() - self.last >= self.seconds
        control.should_save = control.should_save and not control.should_training_stop and due
        if control.should_save:
            self.last = time.monotonic()
        return control
