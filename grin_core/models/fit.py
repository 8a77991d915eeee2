"""The answer-token training loop that training from scratch (train.py) and fine-tuning from a base
(finetune.py) share, and how a run ended.

`transformers.Trainer` does the loop: answer-token loss (data/qa.py), batches grouped by length,
AdamW, the recipe's schedule, gradient clipping at 1.0, and a stopping rule on the epoch's mean loss.
A run ends at its stop loss or at its budget (`max_epochs`), and says which (`stopped_by`): a run
that used its whole budget without reaching the stop loss is under-trained by its own recipe's
measure, and whoever registers it should see so.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
)

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.models.checkpoint import load_grin_config
from grin_core.runtime.training_args import training_arguments

STOP_LOSS = "stop_loss"  # an epoch's mean answer loss fell below the recipe's stop loss
BUDGET = "budget"  # every epoch of the recipe's max_epochs ran


class Schedule(Protocol):
    """What the loop reads of a recipe (`TrainConfig`, `FinetuneConfig`)."""

    max_epochs: int
    stop_loss: float | None
    lr: float
    lr_scheduler: str
    warmup_steps: int
    batch_size: int
    seed: int
    max_length: int
    bf16: bool


@dataclass
class TrainResult:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, seconds
    stopped_by: str = BUDGET


def stopped_by(history: Sequence[Mapping], stop_loss: float | None) -> str:
    """`STOP_LOSS` when the last epoch's loss is below `stop_loss` (the rule that ends a run early), else `BUDGET`."""
    if stop_loss is not None and history and history[-1]["loss"] < stop_loss:
        return STOP_LOSS
    return BUDGET


class _EpochLog(TrainerCallback):
    """Records (epoch, mean loss, seconds) per epoch and stops once the loss is low enough."""

    def __init__(self, stop_loss: float | None) -> None:
        self.stop_loss, self.history, self._t0 = stop_loss, [], time.perf_counter()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        seconds = time.perf_counter() - self._t0
        self.history.append({"epoch": round(state.epoch), "loss": logs["loss"], "seconds": round(seconds, 2)})
        if self.stop_loss is not None and logs["loss"] < self.stop_loss:
            control.should_training_stop = True


def fit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping],
    schedule: Schedule,
    weight_decay: float = 0.0,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train `model` in place on `records` {question, answer} (prompts in the tokenizer's line template)."""
    dataset = qa_dataset(records, tokenizer, max_length=schedule.max_length)
    use_cache = getattr(model.config, "use_cache", None)
    log = _EpochLog(schedule.stop_loss)
    with tempfile.TemporaryDirectory(prefix="grin-train-") as out:
        args = training_arguments(
            out,
            epochs=schedule.max_epochs,
            batch_size=schedule.batch_size,
            learning_rate=schedule.lr,
            seed=schedule.seed,
            progress=progress,
            lr_scheduler=schedule.lr_scheduler,
            warmup_steps=schedule.warmup_steps,
            max_grad_norm=1.0,
            weight_decay=weight_decay,
            bf16=schedule.bf16,
            use_cpu=not torch.cuda.is_available(),  # bf16 autocast on a CPU needs the CPU named
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=qa_collator(tokenizer),
            processing_class=tokenizer,
            callbacks=[log, *callbacks],
        )
        if not progress:  # without tqdm, Trainer prints every log dict instead
            trainer.remove_callback(PrinterCallback)
        trainer.train()
    if use_cache is not None:  # Trainer set it to its argument's; the saved config keeps the model's
        model.config.use_cache = use_cache
    return TrainResult(model.eval(), tokenizer, log.history, stopped_by(log.history, schedule.stop_loss))


def measured(train: Callable[[], TrainResult]) -> tuple[TrainResult, dict]:
    """Run `train` and return its result with what a checkpoint records of the run: the loss curve,
    how it ended, its seconds, where they were spent and the CUDA peak (None on a CPU)."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train()
    return result, {
        "history": result.history,
        "stopped_by": result.stopped_by,
        "train_seconds": round(time.perf_counter() - started, 1),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if cuda else None,
    }


@dataclass(frozen=True)
class TrainingRun:
    """How a saved checkpoint's training went, read back from its grin_config.json."""

    epochs: int
    final_loss: float | None
    stopped_by: str
    seconds: float
    recipe: dict  # every field of the recipe it was trained with, defaults included


def training_run(checkpoint_dir: str | Path) -> TrainingRun:
    """The run recorded beside a checkpoint by `train_or_load` / `finetune_or_load` (older cache entries
    lack `stopped_by`: it follows from their history and stop loss)."""
    info = load_grin_config(checkpoint_dir)
    history, recipe = info.get("history", []), info.get("train_config", {})
    return TrainingRun(
        epochs=len(history),
        final_loss=history[-1]["loss"] if history else None,
        stopped_by=info.get("stopped_by") or stopped_by(history, recipe.get("stop_loss")),
        seconds=float(info.get("train_seconds", 0.0)),
        recipe=recipe,
    )
