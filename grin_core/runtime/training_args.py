"""The `TrainingArguments` every grin training run shares: training a target (train.py), GRIN
unlearning (unlearn.py) and GRUN's intervention (grun_train.py). One place for the fixed settings."""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainingArguments

from grin_core.runtime.distributed import rank_and_world


def training_arguments(
    output_dir: str,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool,
    lr_scheduler: str,
    warmup_steps: int,
    max_grad_norm: float,
    **overrides: Any,
) -> TrainingArguments:
    """One epoch-logged, unsaved, seeded run, batched by length; `overrides` replace or add arguments."""
    return TrainingArguments(
        **{
            "output_dir": output_dir,
            "num_train_epochs": epochs,
            "per_device_train_batch_size": batch_size,
            "learning_rate": learning_rate,
            "lr_scheduler_type": lr_scheduler,
            "warmup_steps": warmup_steps,
            "weight_decay": 0.0,  # decay would move unselected entries of masked tensors (masked_update.py)
            "max_grad_norm": max_grad_norm,
            "train_sampling_strategy": "group_by_length",
            "logging_strategy": "epoch",
            "save_strategy": "no",
            "report_to": "none",
            "seed": seed,
            "data_seed": seed,
            "disable_tqdm": not progress,
            "dataloader_num_workers": 0,  # the unlearning collator's retain stream is stateful
            "dataloader_pin_memory": False,
            **overrides,
        }
    )


def unlearning_arguments(
    output_dir: str,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    progress: bool = False,
    checkpoints: bool = False,
    mixed_precision: bool = False,
    lr_scheduler: str = "constant",
    warmup_steps: int = 0,
    max_grad_norm: float = 1.0,
) -> TrainingArguments:
    """An unlearning run's (GRIN or GRUN): `batch_size` is global (split over DDP ranks), the extra
    columns stay, and `checkpoints` saves progress at epoch ends into `output_dir` (resume.py), the
    newest only."""
    bf16 = mixed_precision and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return training_arguments(
        output_dir,
        epochs=epochs,
        batch_size=per_rank(batch_size),
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
        lr_scheduler=lr_scheduler,
        warmup_steps=warmup_steps,
        max_grad_norm=max_grad_norm,
        use_cpu=not torch.cuda.is_available(),  # so several CPU processes form a gloo group (DDP)
        remove_unused_columns=False,  # keeps `length` and the reference log-probs
        save_strategy="epoch" if checkpoints else "no",
        save_total_limit=1,
        bf16=bf16,
    )


def per_rank(batch_size: int) -> int:
    """A global batch's share per process: DDP averages the ranks' gradients into that batch's."""
    _, world = rank_and_world()
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} does not split over {world} processes")
    return batch_size // world
