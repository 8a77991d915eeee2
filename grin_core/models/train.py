"""Train a target model from scratch until it memorises a QA set; also the retrain baseline.

The same recipe trained on the retain set gives the retrain-from-scratch model that forget quality
is measured against. `transformers.Trainer` does the loop: answer-token loss (data.py), batches
grouped by length (5x faster on a CPU than mixed lengths), AdamW without weight decay, linear
warm-up then cosine decay, gradient clipping at 1.0, and a stopping rule on the epoch's mean loss.
`train_or_load` caches the result under a key of everything that determines it.

Recipe (measured on 2 shared CPU cores; 20 TOFU authors + 217 general-knowledge QA = 617 QA):
batch 32 beats batch 16 by far at lr 3e-3 (loss < 0.05, ROUGE-L recall 0.99, after 24-26 epochs
instead of loss 0.21 / ROUGE-L 0.75 after 60); batch 64 needs 24 epochs but each costs ~40 %
more; lr 5e-3 stalls (loss 3.4 after 60 epochs). An epoch of batch 32 costs the same time as one
of batch 16 (the CPU is compute-bound), so the larger batch is a straight win. Cosine decay over
40 epochs stops (loss < 0.05) after 24 epochs at 20 authors and 29 at 40 authors (1,017 QA).
Seconds per epoch: ~3.3 at 617 QA on 2 idle cores. When other torch processes share the 2 cores,
run with one thread (OMP_NUM_THREADS=1 / torch.set_num_threads(1)): at 1,017 QA under a load of ~5
an epoch took 16 s with one thread and 48 s with two (OpenMP threads spin against each other).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    set_seed,
)

from grin_core.data.prompts import format_prompt
from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.models.cache import cached_dir, content_key
from grin_core.models.checkpoint import save_checkpoint
from grin_core.models.tiny_llama import TinyLlamaConfig, build_model
from grin_core.models.tokenizer import train_bpe_tokenizer
from grin_core.runtime.training_args import training_arguments

RECIPE_VERSION = 1  # bump when the training code changes what a config produces


@dataclass(frozen=True)
class TrainConfig:
    """How a target model is trained; every field is part of the cache key."""

    max_epochs: int = 40  # upper bound and cosine horizon; the stopping rule ends training earlier
    stop_loss: float | None = 0.05  # stop after the first epoch whose mean answer loss is below
    lr: float = 3e-3
    lr_scheduler: str = "cosine"  # any transformers scheduler name; decays over max_epochs
    warmup_steps: int = 20
    batch_size: int = 32  # 16 memorises far slower per epoch at the same cost (see above)
    seed: int = 0
    vocab_size: int = 2048  # of the BPE tokenizer trained on the training text
    max_length: int = 256
    bf16: bool = False  # bf16 autocast of the forward pass (weights and optimizer stay fp32)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("max_epochs and batch_size must be >= 1, warmup_steps >= 0")
        if not self.lr > 0:
            raise ValueError("lr must be positive")
        if self.stop_loss is not None and not self.stop_loss > 0:
            raise ValueError("stop_loss must be positive or None")
        if self.vocab_size < 259:
            raise ValueError("vocab_size must cover the 256 bytes and 3 special tokens")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast
    history: list[dict] = field(default_factory=list)  # per epoch: epoch, loss, seconds


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


def training_texts(records: Sequence[Mapping]) -> list[str]:
    """The text a tokenizer is trained on: each QA pair as the model sees it."""
    return [f"{format_prompt(r['question'])} {r['answer']}" for r in records]


def train_model(
    records: Sequence[Mapping],
    model_config: TinyLlamaConfig,
    train_config: TrainConfig,
    tokenizer: PreTrainedTokenizerFast | None = None,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train a fresh model (and, unless given, a BPE tokenizer) on `records` {question, answer}."""
    set_seed(train_config.seed)
    if tokenizer is None:
        tokenizer = train_bpe_tokenizer(training_texts(records), vocab_size=train_config.vocab_size)
    model = build_model(model_config, tokenizer, seed=train_config.seed)
    dataset = qa_dataset(records, tokenizer, max_length=train_config.max_length)
    log = _EpochLog(train_config.stop_loss)
    with tempfile.TemporaryDirectory(prefix="grin-train-") as out:
        args = training_arguments(
            out,
            epochs=train_config.max_epochs,
            batch_size=train_config.batch_size,
            learning_rate=train_config.lr,
            seed=train_config.seed,
            progress=progress,
            lr_scheduler=train_config.lr_scheduler,
            warmup_steps=train_config.warmup_steps,
            max_grad_norm=1.0,
            bf16=train_config.bf16,
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
    return TrainResult(model.eval(), tokenizer, log.history)


def records_sha256(records: Sequence[Mapping]) -> str:
    """Hash of the ordered (question, answer) pairs: identifies a training set without its text."""
    return content_key([[r["question"], r["answer"]] for r in records])


def train_or_load(
    records: Sequence[Mapping],
    model_config: TinyLlamaConfig,
    train_config: TrainConfig,
    cache_dir: str | Path,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> Path:
    """The checkpoint dir of a model trained on `records`, trained only if not cached yet.

    The key hashes the model config, the training config, the data and the tokenizer settings;
    callers pass `.grin/cache/models` so the entry lands in `.grin/cache/models/<key>`.
    """
    data_hash = records_sha256(records)
    key = content_key(
        RECIPE_VERSION,
        model_config.to_dict(),
        train_config.to_dict(),
        data_hash,
        {"tokenizer": "byte-level-bpe", "vocab_size": train_config.vocab_size},
    )

    def build(directory: Path) -> None:
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        result = train_model(records, model_config, train_config, progress=progress, callbacks=callbacks)
        grin_config = {
            "model_config": model_config.to_dict(),
            "train_config": train_config.to_dict(),
            "data_sha256": data_hash,
            "n_records": len(records),
            "history": result.history,
            "train_seconds": round(time.perf_counter() - started, 1),
            # where the seconds were spent, and the training's CUDA peak (None on a CPU)
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "peak_cuda_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        }
        card = {"method": "trained from scratch", "epochs": len(result.history), "data_sha256": data_hash}
        save_checkpoint(result.model, result.tokenizer, directory, card_info=card, grin_config=grin_config)

    path, _ = cached_dir(cache_dir, key, build)
    return path


def training_history(checkpoint_dir: str | Path) -> list[dict]:
    """The per-epoch loss curve saved with a checkpoint by `train_or_load`."""
    return json.loads((Path(checkpoint_dir) / "grin_config.json").read_text()).get("history", [])
