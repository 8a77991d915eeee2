"""Fine-tune a registered base checkpoint on a QA set: a model line trained from a pretrained model
instead of from scratch; also the retrained reference of a benchmark whose target was fine-tuned.

The base keeps what makes it the base: its architecture (config), its tokenizer and its line's prompt
template (a chat model keeps `chat`); no BPE is trained and no layer is added. The loop is fit.py's
(answer-token loss on the base's own prompt). Weights train in float32 (a half-precision base is
upcast: AdamW's small steps vanish in bf16) and are saved so. The defaults are a pretrained chat
model's (AdamW at 1e-4, batch 8, no weight decay, a constant rate), not the from-scratch recipe's,
whose 3e-3 would wreck a pretrained model; the recipe used is saved in full with the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import SchedulerType, TrainerCallback, set_seed

from grin_core.data.prompts import line_template
from grin_core.models.cache import cached_dir, content_key
from grin_core.models.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint, verify_checkpoint
from grin_core.models.fit import TrainResult, fit, measured
from grin_core.models.train import records_sha256

FINETUNE_VERSION = 1  # bump when the fine-tuning code changes what a recipe produces
SCHEDULERS = tuple(s.value for s in SchedulerType)


@dataclass(frozen=True)
class FinetuneConfig:
    """How a base is fine-tuned; every field is part of the cache key, with the base's sha256 and the data."""

    max_epochs: int = 10  # the budget; the stop loss usually ends a run earlier
    stop_loss: float | None = 0.05  # stop after the first epoch whose mean answer loss is below
    lr: float = 1e-4
    lr_scheduler: str = "constant"  # any transformers scheduler name (a decaying one decays over max_epochs)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    batch_size: int = 8
    seed: int = 0
    max_length: int = 256  # tokens of prompt + answer; longer examples are cut
    bf16: bool = False  # bf16 autocast of the forward pass (weights and optimizer stay fp32)

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1 or self.warmup_steps < 0 or self.max_length < 2:
            raise ValueError("max_epochs and batch_size must be >= 1, warmup_steps >= 0, max_length >= 2")
        if not self.lr > 0:
            raise ValueError("lr must be positive")
        if not self.weight_decay >= 0:
            raise ValueError("weight_decay must be >= 0")
        if self.stop_loss is not None and not self.stop_loss > 0:
            raise ValueError("stop_loss must be positive or None")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"lr_scheduler {self.lr_scheduler!r} is none of {', '.join(SCHEDULERS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def finetune_model(
    records: Sequence[Mapping],
    base_dir: str | Path,
    config: FinetuneConfig,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Load the base checkpoint (manifest verified) and fine-tune it on `records` {question, answer}."""
    set_seed(config.seed)
    model, tokenizer = load_checkpoint(base_dir)
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    model.train()
    return fit(
        model, tokenizer, records, config, weight_decay=config.weight_decay, progress=progress, callbacks=callbacks
    )


def finetune_or_load(
    records: Sequence[Mapping],
    base_dir: str | Path,
    config: FinetuneConfig,
    cache_dir: str | Path,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> Path:
    """The checkpoint dir of the base fine-tuned on `records`, fine-tuned only if not cached yet.

    The key hashes the base checkpoint's sha256 (its manifest's), the recipe and the data: a benchmark
    passes the retain set to get the retrained reference of a target fine-tuned on the full set."""
    verify_checkpoint(base_dir)  # a base without a manifest has no sha256 to key on
    base_sha256, data_hash = checkpoint_sha256(base_dir), records_sha256(records)
    key = content_key(FINETUNE_VERSION, "fine-tune", base_sha256, config.to_dict(), data_hash)

    def build(directory: Path) -> None:
        result, run = measured(
            lambda: finetune_model(records, base_dir, config, progress=progress, callbacks=callbacks)
        )
        grin_config = {
            "trained_from": "base",
            "base_checkpoint_sha256": base_sha256,
            "architecture": type(result.model).__name__,
            "prompt_template": line_template(result.tokenizer),
            "train_config": config.to_dict(),
            "data_sha256": data_hash,
            "n_records": len(records),
            **run,
        }
        card = {
            "method": "fine-tuned from a base",
            "base_checkpoint_sha256": base_sha256,
            "epochs": len(result.history),
            "stopped_by": result.stopped_by,
            "data_sha256": data_hash,
        }
        save_checkpoint(result.model, result.tokenizer, directory, card_info=card, grin_config=grin_config)

    path, _ = cached_dir(cache_dir, key, build)
    return path
