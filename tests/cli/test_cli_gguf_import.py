"""`grin model import` of a GGUF file: dequantised to an ordinary safetensors version whose card, registry
row and audit record name the file's sha256 and quantisation type; a damaged file is refused with
nothing written, and a machine without the gguf extra is told what to install."""

from __future__ import annotations

import json
import sys

import torch

from grin_core.models.checkpoint import CARD_DATA, file_sha256, load_checkpoint
from infra.storage import LocalStore
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef
from tests.cli.conftest import Grin
from tests.fixtures.tiny_gguf import write_tiny_gguf


def test_a_gguf_imports_once_as_safetensors_with_its_source_recorded(grin: Grin, tiny_model, tiny_tokenizer, tmp_path):
    path = write_tiny_gguf(tiny_model, tiny_tokenizer, tmp_path / "tiny.Q8_0.gguf", quantization="Q8_0")
    source = {"format": "gguf", "file": "tiny.Q8_0.gguf", "sha256": file_sha256(path), "quantization": "Q8_0"}
    first = grin.json("model", "import", "tiny-gguf", str(path))
    assert (first["version"], first["architecture"], first["already_imported"]) == (1, "LlamaForCausalLM", False)
    assert {k: first["source"][k] for k in source} == source
    for again in (
        grin.json("model", "import", "tiny-gguf", str(tmp_path), "--gguf-file", "tiny.Q8_0.gguf"),
        grin.json("model", "import", "tiny-gguf", path.as_uri()),  # a directory holding it, an object,
        grin.json("model", "import", "tiny-gguf", tmp_path.as_uri(), "--gguf-file", path.name),
    ):  # a prefix
        assert again["already_imported"] is True and again["checkpoint_sha256"] == first["checkpoint_sha256"]

    local = fetch_checkpoint(
        CheckpointRef(uri=first["checkpoint_uri"], sha256=first["checkpoint_sha256"]), grin.settings
    )
    assert not list(local.glob("*.gguf")) and list(local.glob("*.safetensors"))
    card = json.loads((local / CARD_DATA).read_text())
    assert {k: card["source"][k] for k in source} == source
    [added] = [r for r in grin.json("audit", "log") if r["kind"] == "model.version_added"]
    assert {k: added["payload"]["hparams"]["source"][k] for k in source} == source  # the payload is the row's

    model, tokenizer = load_checkpoint(local)
    ids = tiny_tokenizer.encode("Question: Who is Jane Doe?\nAnswer:", add_special_tokens=False)
    assert tokenizer.encode("Question: Who is Jane Doe?\nAnswer:", add_special_tokens=False) == ids
    with torch.no_grad():
        expected, got = tiny_model(torch.tensor([ids])).logits, model(torch.tensor([ids])).logits
    # Q8_0 rounds each weight to within 1/254 of its block's largest: logits move by a small part of their spread
    assert (got - expected).abs().max() < 0.1 * expected.std()


def test_a_damaged_gguf_and_a_missing_extra_are_refused_with_nothing_written(
    grin: Grin, tiny_model, tiny_tokenizer, tmp_path, monkeypatch
):
    path = write_tiny_gguf(tiny_model, tiny_tokenizer, tmp_path / "tiny.gguf")
    damaged = tmp_path / "damaged" / "tiny.gguf"
    damaged.parent.mkdir()
    damaged.write_bytes(path.read_bytes()[:4096])
    result = grin("model", "import", "tiny-gguf", str(damaged))
    assert result.exit_code != 0 and "not a readable GGUF file" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = grin("model", "import", "tiny-gguf", str(tmp_path), "--gguf-file", "other.gguf")
    assert result.exit_code != 0 and "no GGUF file 'other.gguf'" in result.output

    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the extra were not installed
    result = grin("model", "import", "tiny-gguf", str(path))
    assert result.exit_code != 0 and "pip install 'grin[gguf]'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert grin.json("model", "list") == []
    assert LocalStore(grin.settings.state_dir / "objects").list("checkpoints/") == []


def test_a_gguf_named_in_a_hub_repository_imports_from_the_hub_cache(
    grin: Grin, tiny_model, tiny_tokenizer, tmp_path, monkeypatch
):
    """As tests/cli/test_cli_model_import.py: the hub's offline mode over a cache laid out as huggingface_hub
    lays it, here a GGUF repository (one file per quantisation, no config.json)."""
    from huggingface_hub import constants

    cache, commit = tmp_path / "hub", "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--acme--tiny-GGUF" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    write_tiny_gguf(tiny_model, tiny_tokenizer, snapshot / "tiny.F32.gguf")
    write_tiny_gguf(tiny_model, tiny_tokenizer, snapshot / "tiny.Q8_0.gguf", quantization="Q8_0")
    (cache / "models--acme--tiny-GGUF" / "refs").mkdir()
    (cache / "models--acme--tiny-GGUF" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    imported = grin.json("model", "import", "hub-gguf", "acme/tiny-GGUF", "--gguf-file", "tiny.F32.gguf")
    assert (imported["version"], imported["source"]["quantization"]) == (1, "F32")
    result = grin("model", "import", "hub-gguf", "acme/tiny-GGUF")  # two files, none named
    assert result.exit_code != 0 and "2 GGUF files" in result.output and "name one" in result.output
