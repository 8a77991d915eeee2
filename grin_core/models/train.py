"""Train a target model from scratch until it memorises a QA set; also the retrain baseline.

The same recipe trained on the retain set gives the retrain-from-scratch model that forget quality
is measured against. The loop is fit.py's (answer-token loss, batches grouped by length: 5x faster
on a CPU than mixed lengths, and a stop loss whose run says whether it stopped there or at its budget);
this recipe is AdamW without weight decay, linear warm-up then cosine decay, gradient clipping at 1.0.
`train_or_load` caches the result under a key of everything that determines it. Fine-tuning a
registered base instead is finetune.py.

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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerFast, TrainerCallback, set_seed

from grin_core.data.prompts import format_prompt
from grin_core.models.cache import cached_dir, content_key
from grin_core.models.checkpoint import save_checkpoint
from grin_core.models.fit import TrainResult, fit, measured
from grin_core.models.tiny_llama import TinyLlamaConfig, build_model
from grin_core.models.tokenizer import train_bpe_tokenizer

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
    return fit(model, tokenizer, records, train_config, progress=progress, callbacks=callbacks)


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
        result, run = measured(
            lambda: train_model(records, model_config, train_config, progress=progress, callbacks=callbacks)
        )
        grin_config = {
            "trained_from": "scratch",
            "model_config": model_config.to_dict(),
            "train_config": train_config.to_dict(),
            "data_sha256": data_hash,
            "n_records": len(records),
            **run,
        }
        card = {
            "method": "trained from scratch",
            "epochs": len(result.history),
            "stopped_by": result.stopped_by,
            "data_sha256": data_hash,
        }
        save_checkpoint(result.model, result.tokenizer, directory, card_info=card, grin_config=grin_config)

    path, _ = cached_dir(cache_dir, key, build)
    return path


def training_history(checkpoint_dir: str | Path) -> list[dict]:
    """The per-epoch loss curve saved with a checkpoint by `train_or_load`."""
    return json.loads((Path(checkpoint_dir) / "grin_config.json").read_text()).get("history", [])
