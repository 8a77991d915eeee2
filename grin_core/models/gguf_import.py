"""A GGUF file (llama.cpp's quantised format) turned into an ordinary safetensors model directory,
which `grin model import` then checks and registers like any other.

Unlearning edits float weights, so the file is dequantised (transformers reads GGUF through the optional
`gguf` package, into float32). A model loaded that way refuses `save_pretrained` and its config names
the GGUF quantisation, which would make the saved directory unloadable as plain safetensors; so its
weights are copied into a plain model built from the same config. What the file was (its sha256 and
quantisation type) is returned for the model card, the registry row and the audit record.
"""

from __future__ import annotations

import copy
import importlib.util
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from grin_core.models.architecture_check import ArchitectureMismatchError, check_loading_info
from grin_core.models.checkpoint import file_sha256

GGUF_MISSING = "importing a GGUF file needs the gguf package: pip install 'grin[gguf]' (or: pip install gguf)"
# What a damaged or foreign file raises while gguf and transformers parse it.
UNREADABLE = (ValueError, KeyError, IndexError, TypeError, OSError, EOFError, NotImplementedError, RuntimeError)


class GgufImportError(ValueError):
    """The GGUF file cannot become a model directory; the message says why in one line."""


@dataclass(frozen=True)
class GgufSource:
    """What an imported model was dequantised from."""

    file: str  # the file's name
    sha256: str
    quantization: str  # llama.cpp's name for the file's type (Q4_1, Q8_0, F16, ...)
    tensor_types: dict[str, int]  # tensors per storage type: a quantised file keeps some (norms) in F32

    def as_dict(self) -> dict[str, object]:
        return {"format": "gguf", **asdict(self)}


def require_gguf() -> None:
    """Raise, saying what to install, unless the gguf package is importable."""
    if importlib.util.find_spec("gguf") is None:
        raise GgufImportError(GGUF_MISSING)


def gguf_in(directory: Path, name: str | None) -> Path | None:
    """The GGUF file to import from `directory`: `name` (which must be there), else the only `.gguf`
    of a directory holding no safetensors; None for an ordinary model directory."""
    if name is not None:
        path = directory / name
        if not path.is_file() or Path(name).name != name:
            raise GgufImportError(f"no GGUF file {name!r} in the source")
        return path
    if any(directory.glob("*.safetensors")):
        return None
    found = sorted(p.name for p in directory.glob("*.gguf"))
    if len(found) > 1:
        raise GgufImportError(f"the source holds {len(found)} GGUF files ({', '.join(found[:3])}); name one")
    return directory / found[0] if found else None


def describe(path: Path) -> GgufSource:
    """The file's sha256 and quantisation type, read from its header (a damaged file is refused)."""
    require_gguf()
    from gguf import GGMLQuantizationType, GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
        types = Counter(GGMLQuantizationType(t.tensor_type).name for t in reader.tensors)
        weights = Counter(
            {GGMLQuantizationType(t.tensor_type).name: int(t.n_elements) for t in reader.tensors if len(t.shape) > 1}
        )
        field = reader.fields.get("general.file_type")
        file_type = LlamaFileType(int(field.parts[field.data[0]][0])).name if field else None
    except UNREADABLE as exc:
        raise GgufImportError(f"{path.name} is not a readable GGUF file: {_first_line(exc)}") from None
    if not types:
        raise GgufImportError(f"{path.name} holds no tensors")
    # The file's declared type when it has one (what llama.cpp's quantize wrote), else its commonest weight type.
    quantization = (
        file_type.removeprefix("MOSTLY_").removeprefix("ALL_") if file_type else (weights or types).most_common(1)[0][0]
    )
    return GgufSource(
        file=path.name, sha256=file_sha256(path), quantization=quantization, tensor_types=dict(sorted(types.items()))
    )


def dequantise(path: Path, out: Path) -> GgufSource:
    """Write `path`'s model, dequantised to float32, and its tokenizer as a safetensors directory at `out`."""
    source = describe(path)
    # Architectures transformers can run packed would otherwise keep their GGUF blocks (releases without
    # GgufConfig dequantise every architecture).
    unpacked = (
        {"quantization_config": transformers.GgufConfig(dequantize=True)} if hasattr(transformers, "GgufConfig") else {}
    )
    try:
        loaded, info = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32, output_loading_info=True, **unpacked
        )
        check_loading_info(info)  # every tensor from the file, none initialised at random
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except ArchitectureMismatchError as exc:
        raise GgufImportError(f"{path.name}: {exc}") from None
    except UNREADABLE as exc:
        raise GgufImportError(f"cannot load {path.name}: {_first_line(exc)}") from None
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # transformers' GGUF config leaves the special tokens at the architecture's defaults; the file names them.
    for field in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, field, None) is not None:
            setattr(config, field, getattr(tokenizer, field))
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    try:
        plain.load_state_dict(loaded.state_dict(), strict=True)
    except RuntimeError as exc:  # weights still packed, or named otherwise than the plain model's
        raise GgufImportError(
            f"{path.name}: the dequantised weights do not fit a plain model: {_first_line(exc)}"
        ) from None
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return source


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
