"""The benchmark's recipes: each builds a valid model and schedule, and the gpu one trains end to end
at tiny dimensions on the CPU (its bf16 autocast included) with fp32 weights out."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from transformers import TrainerCallback

from benchmarks.recipes import RECIPES
from grin_core.data.tofu import TofuSubset, load_tofu
from grin_core.models.tiny_llama import TinyLlamaConfig
from grin_core.models.train import TrainConfig, train_model

TINY_DIMS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


class SeenArguments(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        self.bf16, self.batch, self.lr, self.warmup = (
            args.bf16,
            args.per_device_train_batch_size,
            args.learning_rate,
            args.warmup_steps,
        )


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_its_model_and_schedule(name):
    recipe = RECIPES[name]
    # the configs' own checks pass, and no recipe value is lost on the way into them
    assert TinyLlamaConfig(**recipe.model).to_dict().items() >= recipe.model.items()
    assert TrainConfig(**recipe.train).to_dict().items() >= recipe.train.items()


def test_the_gpu_recipe_trains_at_tiny_dimensions_with_bf16_autocast_and_fp32_weights(tofu_dir):
    gpu = RECIPES["gpu"]
    schedule = TrainConfig(**{**gpu.train, "max_epochs": 3, "vocab_size": 512, "stop_loss": None})
    records = load_tofu(TofuSubset(n_authors=3, split="forget10", n_general=4), tofu_dir).train
    seen = SeenArguments()
    result = train_model(records, TinyLlamaConfig(**TINY_DIMS), schedule, progress=False, callbacks=[seen])
    assert (seen.bf16, seen.batch, seen.lr, seen.warmup) == (True, 64, gpu.train["lr"], gpu.train["warmup_steps"])
    assert len(result.history) == 3 and all(h["loss"] == h["loss"] for h in result.history)  # no NaN
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in result.model.parameters())
    # bf16 is part of the cache key: an fp32 target is never served for a bf16 one
    assert replace(schedule, bf16=False).to_dict() != schedule.to_dict()


def test_recipe_shape_logs_each_epoch_and_the_epochs_it_took(tofu_dir, tmp_path):
    from benchmarks.recipe_shape import main

    out = tmp_path / "shape.jsonl"
    main(
        [
            "--recipe",
            "tiny",
            "--authors",
            "3",
            "--general",
            "2",
            "--set",
            "max_epochs=2",
            "lr=2e-3",
            "--data",
            str(tofu_dir),
            "--jsonl",
            str(out),
        ]
    )
    header, *epochs, done = [json.loads(line) for line in out.read_text().splitlines()]
    assert header["records"] == 3 * 20 + 4 and header["train"]["lr"] == 2e-3 and header["train"]["max_epochs"] == 2
    assert [e["epoch"] for e in epochs] == [1.0, 2.0] and all(e["loss"] > 0 for e in epochs)
    assert done["done"] and done["epochs"] == 2
