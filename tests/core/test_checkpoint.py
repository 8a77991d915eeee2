"""Checkpoints round-trip bit-exactly, carry their config and card, and refuse tampering."""

import json

import pytest
import torch

from grin_core.models.checkpoint import (
    CheckpointIntegrityError,
    checkpoint_sha256,
    load_checkpoint,
    load_grin_config,
    save_checkpoint,
)

CARD = {
    "method": "GRIN-NPO",
    "p": 0.5,
    "sigma2": 0.001,
    "epochs": 8,
    "parent": "ab" * 32,
    "metrics": {"forget_rougeL": 0.12, "retain_rougeL": 0.9},
    "ticket_ids": [7],
}


@pytest.fixture
def saved(tmp_path, tiny_model, tiny_tokenizer):
    digest = save_checkpoint(
        tiny_model, tiny_tokenizer, tmp_path / "ckpt", card_info=CARD, grin_config={"model_config": {"hidden_size": 32}}
    )
    return tmp_path / "ckpt", digest


def test_round_trip(saved, tiny_model, tiny_tokenizer):
    directory, digest = saved
    assert digest == checkpoint_sha256(directory) and len(digest) == 64
    names = json.loads((directory / "manifest.json").read_text())["files"]
    assert "model.safetensors" in names and "README.md" in names and "grin_config.json" in names
    assert not list(directory.glob("*.bin")) and list(names) == sorted(names)
    model, tokenizer = load_checkpoint(directory)
    for (name, a), (_, b) in zip(tiny_model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name
    assert tokenizer.encode("Who wrote it?") == tiny_tokenizer.encode("Who wrote it?")
    assert load_grin_config(directory) == {"model_config": {"hidden_size": 32}}
    card = (directory / "README.md").read_text()
    assert "GRIN-NPO" in card and "0.001" in card and "ab" * 32 in card and "forget_rougeL" in card


def test_tampered_weights_are_refused(saved):
    directory, _ = saved
    blob = bytearray((directory / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (directory / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointIntegrityError, match="model.safetensors"):
        load_checkpoint(directory)


def test_extra_or_missing_files_are_refused(saved):
    directory, _ = saved
    (directory / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointIntegrityError, match="pytorch_model.bin"):
        load_checkpoint(directory)
    (directory / "pytorch_model.bin").unlink()
    (directory / "tokenizer.json").unlink()
    with pytest.raises(CheckpointIntegrityError, match="tokenizer.json"):
        load_checkpoint(directory)
