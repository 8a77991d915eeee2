"""Fine-tuning from a base: a tiny chat model imported from a GGUF file (as `grin model import --prompt-template
chat` saves it) is fine-tuned with its own config, tokenizer and chat template, cached by base, recipe and
data, and says whether its stop loss or its budget ended it; a recipe from text is checked in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grin_core.data.prompts import CHAT, line_template, set_line_template
from grin_core.models import finetune
from grin_core.models.checkpoint import checkpoint_sha256, load_checkpoint, load_grin_config, save_checkpoint
from grin_core.models.finetune import FinetuneConfig, finetune_or_load
from grin_core.models.fit import BUDGET, STOP_LOSS, training_run
from grin_core.models.gguf_import import dequantise
from grin_core.models.model_import import load_importable
from grin_core.models.recipe import checked_recipe, parse_pairs
from grin_core.models.train import TrainConfig
from tests.fixtures.tiny_gguf import CHAT_TEMPLATE, with_chat_template, write_tiny_gguf

RECORDS = [{"question": f"What is item {i}?", "answer": f"Item {i} is number {i}."} for i in range(8)]
QUICK = FinetuneConfig(max_epochs=2, stop_loss=None, lr=1e-2, batch_size=4)
# What a base's config may differ in once fine-tuned and saved again: the library that wrote it.
WRITER_FIELDS = ("transformers_version",)


@pytest.fixture
def chat_base(tiny_model, tiny_tokenizer, tmp_path) -> Path:
    """A tiny chat model imported from GGUF the way `grin model import ... --prompt-template chat` does."""
    path = write_tiny_gguf(tiny_model, with_chat_template(tiny_tokenizer), tmp_path / "tiny-chat.gguf")
    dequantise(path, tmp_path / "dequantised")
    model, imported = load_importable(tmp_path / "dequantised")
    set_line_template(imported, CHAT)
    save_checkpoint(model, imported, tmp_path / "base", card_info={"method": "imported"})
    return tmp_path / "base"


def _config(directory: Path) -> dict:
    config = json.loads((directory / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in WRITER_FIELDS}


def test_a_base_fine_tunes_with_its_own_architecture_tokenizer_and_chat_template(chat_base, tmp_path, monkeypatch):
    tuned = finetune_or_load(RECORDS, chat_base, QUICK, tmp_path / "cache", progress=False)

    assert _config(tuned) == _config(chat_base)  # the base's architecture, not a TinyLlama rebuilt
    base_model, base_tokenizer = load_checkpoint(chat_base)
    model, tokenizer = load_checkpoint(tuned)
    assert tokenizer.get_vocab() == base_tokenizer.get_vocab()  # no BPE trained
    assert (line_template(tokenizer), tokenizer.chat_template) == (CHAT, CHAT_TEMPLATE)
    assert sorted(model.state_dict()) == sorted(base_model.state_dict())
    assert not torch.equal(model.state_dict()["lm_head.weight"], base_model.state_dict()["lm_head.weight"])

    run, recorded = training_run(tuned), load_grin_config(tuned)
    assert (run.epochs, run.stopped_by, run.recipe) == (2, BUDGET, QUICK.to_dict())  # the whole recipe, defaults too
    assert run.final_loss < load_grin_config(tuned)["history"][0]["loss"]  # it learned, on the chat prompt
    assert recorded["base_checkpoint_sha256"] == checkpoint_sha256(chat_base)
    assert recorded["prompt_template"] == CHAT and recorded["trained_from"] == "base"

    def no_training(*args, **kwargs):
        raise AssertionError("a warm cache must not fine-tune again")

    monkeypatch.setattr(finetune, "finetune_model", no_training)
    assert finetune_or_load(RECORDS, chat_base, QUICK, tmp_path / "cache", progress=False) == tuned
    for other in (  # another recipe, other data (a retain set: the retrained reference), another base
        lambda: finetune_or_load(RECORDS, chat_base, replace(QUICK, lr=1e-3), tmp_path / "cache"),
        lambda: finetune_or_load(RECORDS[:4], chat_base, QUICK, tmp_path / "cache"),
        lambda: finetune_or_load(RECORDS, tuned, QUICK, tmp_path / "cache"),
    ):
        with pytest.raises(AssertionError, match="warm cache"):
            other()


def test_a_fine_tune_says_whether_its_stop_loss_or_its_budget_ended_it(chat_base, tmp_path):
    stopped = finetune_or_load(RECORDS, chat_base, replace(QUICK, stop_loss=1e6), tmp_path, progress=False)
    assert (training_run(stopped).epochs, training_run(stopped).stopped_by) == (1, STOP_LOSS)
    budget = finetune_or_load(RECORDS, chat_base, replace(QUICK, stop_loss=1e-9), tmp_path, progress=False)
    assert (training_run(budget).epochs, training_run(budget).stopped_by) == (2, BUDGET)


def test_a_recipe_from_text_is_typed_or_refused_in_one_line():
    values = parse_pairs(["lr=1e-3", "max_epochs=3", "stop_loss=none", "bf16=true", "lr_scheduler=cosine"])
    recipe = checked_recipe(FinetuneConfig, values)
    assert (recipe.lr, recipe.max_epochs, recipe.stop_loss, recipe.bf16, recipe.lr_scheduler) == (
        1e-3,
        3,
        None,
        True,
        "cosine",
    )
    assert checked_recipe(FinetuneConfig, {"lr": 1}).lr == 1.0  # an int is taken for a float
    assert checked_recipe(TrainConfig, parse_pairs(["vocab_size=300"])).vocab_size == 300
    refused = {
        ("lerning_rate=1e-4",): "unknown recipe key 'lerning_rate'; known keys: max_epochs, stop_loss, lr",
        ("lr=fast",): "recipe key 'lr': 'fast' is not float",
        ("max_epochs=2.5",): "recipe key 'max_epochs': 2.5 is not int",
        ("stop_loss=true",): "recipe key 'stop_loss': True is not float or none",
        ("lr=-1",): "lr must be positive",
        ("lr_scheduler=fastest",): "lr_scheduler 'fastest' is none of linear, cosine",
        ("lr",): "recipe entry 'lr' is not key=value",
        ("lr=1", "lr=2"): "recipe key 'lr' is given twice",
    }
    for pairs, message in refused.items():
        with pytest.raises(ValueError) as caught:
            checked_recipe(FinetuneConfig, parse_pairs(pairs))
        assert str(caught.value).startswith(message) and "\n" not in str(caught.value), str(caught.value)
