"""`grin model import`: a user's Hugging Face directory (a non-Llama family with its own tokenizer and
prompt template) becomes a registered, content-addressed version; pickles and experts are refused."""

from __future__ import annotations

import json

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from grin_core.data.prompts import line_template, prompt_ids
from grin_core.models.checkpoint import load_checkpoint
from infra.storage import LocalStore, open_store
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef
from tests.cli.conftest import Grin

TEMPLATE = "### Q: {question}\n### A:"


def _hf_directory(tmp_path, tokenizer):
    config = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    directory = tmp_path / "qwen2-user"
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_a_users_model_imports_once_with_its_template_and_loads_as_it_was(grin: Grin, tiny_tokenizer, tmp_path):
    directory = _hf_directory(tmp_path, tiny_tokenizer)
    inbox = open_store(grin.settings)  # the line's data comes from the intake roots, as a ticket's does
    holdout = inbox.put_bytes(
        "inbox/holdout.json", json.dumps([{"question": "Who is X?", "answer": "Nobody."}]).encode()
    )
    manifest = inbox.put_bytes(
        "inbox/train.json", json.dumps([{"question": "Who is Y?", "answer": "Somebody."}] * 3).encode()
    )
    args = [
        "model",
        "import",
        "user-qwen",
        str(directory),
        "--training-manifest",
        manifest.uri,
        "--holdout",
        holdout.uri,
        "--prompt-template",
        TEMPLATE,
    ]
    first = grin.json(*args)
    assert (first["version"], first["architecture"], first["prompt_template"]) == (1, "Qwen2ForCausalLM", TEMPLATE)
    assert first["already_imported"] is False and first["manifest_records"] == 3
    again = grin.json(*args)  # the same content: the same version
    assert again["already_imported"] is True and again["version"] == 1
    assert again["checkpoint_sha256"] == first["checkpoint_sha256"]

    local = fetch_checkpoint(
        CheckpointRef(uri=first["checkpoint_uri"], sha256=first["checkpoint_sha256"]), grin.settings
    )
    model, tokenizer = load_checkpoint(local)
    assert type(model).__name__ == "Qwen2ForCausalLM" and line_template(tokenizer) == TEMPLATE
    assert prompt_ids("Who?", tokenizer) == prompt_ids("Who?", AutoTokenizer.from_pretrained(directory), TEMPLATE)
    original = Qwen2ForCausalLM.from_pretrained(directory)
    for name, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    listed = grin.json("model", "list")
    [line] = [m for m in listed if m["name"] == "user-qwen"]
    assert line["aliases"] == {"production": 1}


def test_pickle_weights_bad_templates_and_missing_directories_are_refused_with_nothing_written(
    grin: Grin, tiny_tokenizer, tmp_path
):
    directory = _hf_directory(tmp_path, tiny_tokenizer)
    (directory / "model.safetensors").unlink()
    (directory / "pytorch_model.bin").write_bytes(b"not really a pickle")
    result = grin("model", "import", "user-qwen", str(directory))
    assert result.exit_code != 0 and "only pickle weights" in result.output and "save_pretrained" in result.output
    good = _hf_directory(tmp_path / "good", tiny_tokenizer)
    result = grin("model", "import", "user-qwen", str(good), "--prompt-template", "no slot")
    assert result.exit_code != 0 and "{question}" in result.output
    result = grin("model", "import", "user-qwen", str(tmp_path / "nowhere"))
    assert result.exit_code != 0 and "not a directory" in result.output
    assert grin.json("model", "list") == []
    assert LocalStore(grin.settings.state_dir / "objects").list("checkpoints/") == []


def test_a_hub_id_imports_from_the_hub_cache_and_an_unreachable_one_is_refused(
    grin: Grin, tiny_tokenizer, tmp_path, monkeypatch
):
    """The hub is unreachable here, so the hub's own offline mode stands in for a machine whose cache
    holds what an earlier `snapshot_download` fetched (huggingface_hub's cache layout)."""
    from huggingface_hub import constants

    cache, commit = tmp_path / "hub", "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--acme--qwen2-user"
    (repo / "snapshots").mkdir(parents=True)
    _hf_directory(tmp_path, tiny_tokenizer).rename(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    imported = grin.json("model", "import", "hub-qwen", "acme/qwen2-user")
    assert (imported["version"], imported["architecture"]) == (1, "Qwen2ForCausalLM")
    pinned = grin.json("model", "import", "hub-qwen", f"acme/qwen2-user@{commit}")
    assert pinned["already_imported"] is True and pinned["checkpoint_sha256"] == imported["checkpoint_sha256"]
    result = grin("model", "import", "hub-qwen", "acme/never-fetched")
    assert result.exit_code != 0 and "not reachable" in result.output and "import its directory" in result.output
    assert [m["name"] for m in grin.json("model", "list")] == ["hub-qwen"]
