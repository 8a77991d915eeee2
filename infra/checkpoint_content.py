"""What the files of a checkpoint hold, checked before a model is imported or registered (no torch).

A hash says the bytes are the ones someone listed, not that they are a model. Here every file is
looked at for what it is: weights only in safetensors, whatever a file is named (a pickle is refused
by its first bytes too: loading one can run code), every safetensors header parsed and bounded
(`infra.safetensors_header`), JSON files parsed. The tensor table this returns is what
`grin_core.models.architecture_check` compares with the architecture the config names.

A registered checkpoint's files travel with it, so registration also refuses any file that is not a
kind a checkpoint holds; an import re-saves the model, so it ignores files transformers never reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.errors import InvalidRequestError
from infra.safetensors_header import TensorEntry, read_header
from infra.settings import Settings
from infra.storage import locate

WEIGHTS = ".safetensors"
SHARD_INDEX = ".safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz", ".h5", ".msgpack")
# What else a checkpoint directory holds: config, tokenizer, chat template, card, manifest.
CHECKPOINT_SUFFIXES = (WEIGHTS, ".json", ".txt", ".md", ".jinja", ".tiktoken", ".model")
TEXT_SUFFIXES = (".json", ".txt", ".md", ".jinja", ".tiktoken")
# Config and tokenizer files are small; a bigger one is not what its name says.
MAX_SIDE_FILE_BYTES = 64 * 1024 * 1024
CONVERT = (
    "convert them in a trusted environment: AutoModelForCausalLM.from_pretrained(DIR)"
    ".save_pretrained(OUT) writes safetensors"
)


class CheckpointContentError(InvalidRequestError):
    """A checkpoint file that is not what a grin checkpoint may hold."""


def serialised_object(head: bytes) -> str | None:
    """What a file's first bytes say it is, when that is a pickle or an archive of pickles."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "a pickle"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save's format)"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy array file"
    return None


def check_side_file(name: str, data: bytes) -> None:
    """A non-weights file: no pickle under any name, JSON that parses, text that is UTF-8."""
    found = serialised_object(data[:8])
    if found:
        raise CheckpointContentError(f"{name} is {found}; weights are accepted only as safetensors")
    if name.endswith(TEXT_SUFFIXES):
        try:
            text = data.decode("utf-8")
            if name.endswith(".json"):
                json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            kind = "JSON" if name.endswith(".json") else "UTF-8 text"
            raise CheckpointContentError(f"{name} is not {kind}") from None


def _check_name(name: str, *, strict: bool) -> None:
    lower = name.lower()
    if lower.endswith(PICKLE_SUFFIXES):
        raise CheckpointContentError(f"{name} holds pickle weights; {CONVERT}")
    if strict and not lower.endswith(CHECKPOINT_SUFFIXES):
        raise CheckpointContentError(
            f"{name} is not a file a checkpoint holds (safetensors weights, JSON, text, a tokenizer model)"
        )


def _merge(tensors: dict[str, TensorEntry], found: dict[str, TensorEntry], source: str) -> None:
    twice = sorted(set(tensors) & set(found))
    if twice:
        raise CheckpointContentError(f"{source}: tensor {twice[0]!r} is in two weights files")
    tensors.update(found)


def _check_index(files: dict[str, dict[str, TensorEntry]], index_name: str, index: bytes) -> None:
    """A shard index names exactly the tensors the shards hold, each in the shard that holds it."""
    try:
        weight_map = json.loads(index)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise CheckpointContentError(f"{index_name} has no weight_map") from None
    for tensor, shard in weight_map.items():
        if tensor not in files.get(shard, {}):
            raise CheckpointContentError(f"{index_name} puts {tensor!r} in {shard}, which does not hold it")
    listed = set(weight_map)
    for shard in set(weight_map.values()):
        extra = sorted(set(files[shard]) - listed)
        if extra:
            raise CheckpointContentError(f"{shard} holds {extra[0]!r}, which {index_name} does not list")


def _tensor_table(
    files: dict[str, dict[str, TensorEntry]], side: dict[str, bytes], where: str
) -> dict[str, TensorEntry]:
    if not files:
        raise CheckpointContentError(f"{where} holds no model weights (*{WEIGHTS})")
    indexes = [n for n in side if n.endswith(SHARD_INDEX)]
    if indexes:
        _check_index(files, indexes[0], side[indexes[0]])
    tensors: dict[str, TensorEntry] = {}
    for name, found in sorted(files.items()):
        _merge(tensors, found, name)
    return tensors


def directory_tensors(directory: Path) -> dict[str, TensorEntry]:
    """The tensors of a model directory to import, after checking every top-level file it holds that
    transformers could read: no pickles (by name or by content), headers bounded, JSON that parses."""
    paths = sorted(p for p in directory.iterdir() if p.is_file())
    pickles = [p.name for p in paths if p.name.lower().endswith(PICKLE_SUFFIXES)]
    if pickles and not any(p.name.endswith(WEIGHTS) for p in paths):
        raise CheckpointContentError(f"{directory} holds only pickle weights ({', '.join(pickles[:3])}); {CONVERT}")
    files, side = {}, {}
    for path in paths:
        _check_name(path.name, strict=False)
        with path.open("rb") as stream:
            head = stream.read(8)
            found = serialised_object(head)
            if found:
                raise CheckpointContentError(f"{path.name} is {found}; weights are accepted only as safetensors")
            if path.name.endswith(WEIGHTS):
                stream.seek(0)
                files[path.name] = read_header(stream, path.stat().st_size, source=path.name)
            elif path.name.endswith(".json"):
                if path.stat().st_size > MAX_SIDE_FILE_BYTES:
                    raise CheckpointContentError(f"{path.name}: more than {MAX_SIDE_FILE_BYTES} bytes")
                side[path.name] = head + stream.read()
                check_side_file(path.name, side[path.name])
    return _tensor_table(files, side, str(directory))


def stored_checkpoint_tensors(
    uri: str, recorded: dict[str, str], *, settings: Settings, into: Path
) -> dict[str, TensorEntry]:
    """The tensors of a checkpoint in a store whose manifest (`recorded`: name -> sha256) was verified:
    every file must be a kind a checkpoint holds; weights are read as far as their headers, every
    other file is fetched into `into` (checked against its recorded sha256 on the way) for the
    config and tokenizer checks."""
    store, key = locate(uri, settings=settings)
    prefix = key.rstrip("/")
    files, side = {}, {}
    for name in sorted(recorded):
        _check_name(name, strict=True)
        object_key = f"{prefix}/{name}"
        size = store.head(object_key).size
        if name.endswith(WEIGHTS):
            with store.open(object_key) as stream:
                found = serialised_object(stream.read(8))
            if found:
                raise CheckpointContentError(f"{name} is {found}; weights are accepted only as safetensors")
            with store.open(object_key) as stream:
                files[name] = read_header(stream, size, source=name)
            continue
        if size > MAX_SIDE_FILE_BYTES:
            raise CheckpointContentError(
                f"{name}: {size} bytes, more than the {MAX_SIDE_FILE_BYTES} a config or tokenizer file may take"
            )
        side[name] = store.get_bytes(object_key, expected_sha256=recorded[name])
        check_side_file(name, side[name])
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(side[name])
    return _tensor_table(files, side, uri)


def as_plain(tensors: dict[str, TensorEntry]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The table as plain data (name -> (dtype, shape)) for grin_core, which imports nothing of infra."""
    return {name: (entry.dtype, entry.shape) for name, entry in tensors.items()}
