"""A GGUF file becomes a safetensors directory the ordinary import loads as the same model: a tiny Llama
written as GGUF (tests/fixtures/tiny_gguf.py) comes back with the source's logits and tokenizer; a
damaged file, a missing file and a missing gguf package are refused in one line."""

from __future__ import annotations

import sys

import pytest
import torch

from grin_core.models.checkpoint import file_sha256
from grin_core.models.gguf_import import GgufImportError, dequantise, describe, gguf_in
from grin_core.models.model_import import load_importable
from tests.fixtures.tiny_gguf import write_tiny_gguf

TEXT = "Question: Who wrote The Quiet Harbour?\nAnswer:"


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def test_a_tiny_gguf_dequantises_to_the_model_it_was_written_from(tiny_model, tiny_tokenizer, tmp_path):
    path = write_tiny_gguf(tiny_model, tiny_tokenizer, tmp_path / "tiny.gguf")
    source = dequantise(path, tmp_path / "out")
    assert (source.file, source.sha256, source.quantization) == ("tiny.gguf", file_sha256(path), "F32")
    assert not list((tmp_path / "out").glob("*.gguf"))
    assert "quantization_config" not in (tmp_path / "out" / "config.json").read_text()

    model, tokenizer = load_importable(tmp_path / "out")  # the ordinary import's loader and checks
    ids = tiny_tokenizer.encode(TEXT, add_special_tokens=False)
    assert tokenizer.encode(TEXT, add_special_tokens=False) == ids
    assert tokenizer.decode(ids) == TEXT
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        tiny_tokenizer.bos_token_id,
        tiny_tokenizer.eos_token_id,
        tiny_tokenizer.pad_token_id,
    )
    torch.testing.assert_close(_logits(model, ids), _logits(tiny_model, ids), atol=1e-5, rtol=1e-5)


def test_a_quantised_gguf_records_its_type_and_imports_its_dequantised_weights(tiny_model, tiny_tokenizer, tmp_path):
    import gguf

    path = write_tiny_gguf(tiny_model, tiny_tokenizer, tmp_path / "tiny-q8.gguf", quantization="Q8_0")
    source = dequantise(path, tmp_path / "out")
    assert source.quantization == "Q8_0" and source.tensor_types == {"F32": 5, "Q8_0": 16}  # norms stay F32
    model, _ = load_importable(tmp_path / "out")
    # Each weight is the source's, rounded through Q8_0 (blocks run along rows, so llama.cpp's row
    # permutation of q/k does not change what rounding does to them).
    q8 = gguf.GGMLQuantizationType.Q8_0
    for name, weight in tiny_model.state_dict().items():
        expected = (
            weight
            if weight.dim() == 1
            else torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(weight.numpy(), q8), q8))
        )
        assert torch.equal(model.state_dict()[name], expected), name
    ids = tiny_tokenizer.encode(TEXT, add_special_tokens=False)
    assert not torch.equal(_logits(model, ids), _logits(tiny_model, ids))  # it was quantised


def test_damaged_and_missing_files_and_a_missing_package_are_refused(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    path = write_tiny_gguf(tiny_model, tiny_tokenizer, tmp_path / "tiny.gguf")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(GgufImportError, match=bad.name) as refused:
            dequantise(bad, tmp_path / "out")
        assert "\n" not in str(refused.value)
    assert not (tmp_path / "out").exists()

    assert describe(path).quantization == "F32"
    with pytest.raises(GgufImportError, match="name one"):
        gguf_in(tmp_path, None)  # three .gguf files
    with pytest.raises(GgufImportError, match="no GGUF file"):
        gguf_in(tmp_path, "other.gguf")
    assert gguf_in(tmp_path, "tiny.gguf") == path

    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the extra were not installed
    with pytest.raises(GgufImportError, match=r"pip install 'grin\[gguf\]'"):
        dequantise(path, tmp_path / "out")
