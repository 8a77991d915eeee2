"""`grin model train` on the pipeline (PostgreSQL, moto S3, Prefect API, ML stages in-process): a tiny chat
model imported from a GGUF file is the base of a new line, fine-tuned with its own architecture, tokenizer
and chat template; the version's lineage names the base, and every run says whether its stop loss or its
budget ended it (from scratch too). Tiny models, a few steps each."""

from __future__ import annotations

import json

import flows.train_line  # noqa: F401 - before CliRunner swaps the streams: Prefect's logging keeps the first it sees
from grin_core.data.prompts import CHAT, line_template
from grin_core.models.checkpoint import load_checkpoint
from grin_core.models.finetune import FinetuneConfig
from infra import audit, registry
from infra.storage import open_store
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef
from tasks.resources import sessions
from tests.cli.conftest import Grin
from tests.fixtures.tiny_gguf import CHAT_TEMPLATE, with_chat_template, write_tiny_gguf

RECORDS = [{"question": f"What is item {i}?", "answer": f"Item {i} is number {i}."} for i in range(8)]
WRITER_FIELDS = ("transformers_version",)  # what a config saved again may differ in: the library that wrote it
QUICK = ("--recipe", "max_epochs=2", "--recipe", "lr=0.01", "--recipe", "batch_size=4")


def _config(ref: dict) -> dict:
    directory = fetch_checkpoint(CheckpointRef(**ref))
    config = json.loads((directory / "config.json").read_text())
    return {k: v for k, v in config.items() if k not in WRITER_FIELDS}


def test_a_line_fine_tuned_from_an_imported_chat_model_keeps_it_and_names_it(
    inline_settings, tiny_model, tiny_tokenizer, tmp_path
):
    grin = Grin(inline_settings)
    gguf = write_tiny_gguf(tiny_model, with_chat_template(tiny_tokenizer), tmp_path / "tiny-chat.gguf")
    base = grin.json("model", "import", "tiny-chat", str(gguf), "--prompt-template", "chat")
    manifest = open_store(inline_settings).put_bytes("inbox/items.json", json.dumps(RECORDS).encode())
    train = ("model", "train", "items", "--base", "tiny-chat@1", "--manifest", manifest.uri, *QUICK)

    tuned = grin.json(*train, "--recipe", "stop_loss=none")
    recipe = FinetuneConfig(max_epochs=2, lr=0.01, batch_size=4, stop_loss=None).to_dict()  # every field recorded
    assert (tuned["version"], tuned["epochs"], tuned["stopped_by"], tuned["recipe"]) == (1, 2, "budget", recipe)
    base_ref = {"uri": base["checkpoint_uri"], "sha256": base["checkpoint_sha256"]}
    assert tuned["fine_tuned_from"] == {
        "model": "tiny-chat",
        "version": 1,
        "checkpoint": base_ref,
        "lineage_deletions": [],
    }
    assert _config(tuned["checkpoint"]) == _config(base_ref)  # the base's architecture
    _, tuned_tokenizer = load_checkpoint(fetch_checkpoint(CheckpointRef(**tuned["checkpoint"])))
    assert (line_template(tuned_tokenizer), tuned_tokenizer.chat_template) == (CHAT, CHAT_TEMPLATE)
    _, base_tokenizer = load_checkpoint(fetch_checkpoint(CheckpointRef(**base_ref)))
    assert tuned_tokenizer.get_vocab() == base_tokenizer.get_vocab()  # no BPE trained
    _assert_registered(inline_settings, tuned, recipe, manifest.sha256)

    result = grin(*train, "--recipe", "stop_loss=1e6")
    assert result.exit_code == 0, result.output
    assert "items version 2: fine-tuned from tiny-chat@1" in result.stdout
    assert "1 epochs" in result.stdout and "stopped by its stop loss (1000000.0)" in result.stdout


def _assert_registered(settings, tuned: dict, recipe: dict, manifest_sha256: str) -> None:
    """The registry row and its audit record name the base and say how the run ended."""
    with sessions(settings).begin() as session:
        row = registry.resolve(f"items@{tuned['version']}", session=session)
        assert row.hparams["fine_tuned_from"] == tuned["fine_tuned_from"] and row.hparams["trained_from"] == "base"
        assert (row.hparams["stopped_by"], row.hparams["epochs"], row.hparams["recipe"]) == ("budget", 2, recipe)
        assert row.hparams["final_loss"] == tuned["final_loss"] and row.training_manifest_sha256 == manifest_sha256
        assert row.parent is None and row.base_checkpoint_sha256 is None  # a whole model, not a GRUN intervention
        added = [r.payload for r in audit.records(session=session) if r.kind == "model.version_added"]
        assert [p["hparams"]["fine_tuned_from"] for p in added if p["model"] == "items"] == [tuned["fine_tuned_from"]]


def test_a_line_trained_from_scratch_says_its_budget_ended_it_short_of_its_stop_loss(inline_settings):
    grin = Grin(inline_settings)
    manifest = open_store(inline_settings).put_bytes("inbox/items.json", json.dumps(RECORDS).encode())
    tiny = ("--recipe", "max_epochs=1", "--recipe", "vocab_size=300", "--recipe", "stop_loss=1e-9")
    result = grin("model", "train", "scratch", "--manifest", manifest.uri, *tiny)
    assert result.exit_code == 0, result.output
    assert "scratch version 1: trained from scratch" in result.stdout
    assert "stopped by its budget, above its stop loss 1e-09: under-trained by its own recipe" in result.stdout
    with sessions(inline_settings).begin() as session:
        hparams = registry.resolve("scratch@1", session=session).hparams
    assert (hparams["trained_from"], hparams["stopped_by"], hparams["epochs"]) == ("scratch", "budget", 1)
    assert hparams["recipe"]["lr"] == 3e-3 and hparams["architecture"]["hidden_size"] == 128  # defaults recorded
