"""Read a safetensors file's header without torch: what tensors it claims to hold, or why it is not one.

The format is an 8-byte little-endian header length N, N bytes of JSON (`{name: {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {str: str}}`), then the tensor bytes. The header is
bounded before it is read (a length field of 2^60 must not become an allocation), and every
tensor's offsets must tile the data section exactly: a truncated, padded or overlapping file is
refused here, before transformers' loader meets it with a traceback or reads past the end.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from infra.errors import InvalidRequestError

# The reference implementation refuses headers over 100 MB; so does this reader.
MAX_HEADER_BYTES = 100_000_000
METADATA = "__metadata__"
# Bytes per element of every dtype the safetensors format names.
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class SafetensorsHeaderError(InvalidRequestError):
    """A file named .safetensors whose bytes are not a well-formed safetensors file."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it."""

    dtype: str
    shape: tuple[int, ...]


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"names {key!r} twice")
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _entry(name: str, raw: Any, source: str) -> tuple[TensorEntry, int, int]:
    def bad(why: str) -> SafetensorsHeaderError:
        return SafetensorsHeaderError(f"{source}: tensor {name!r} {why}")

    if not isinstance(raw, Mapping) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise bad("is not {dtype, shape, data_offsets}")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise bad(f"has an unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("has a shape that is not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(o) is int and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise bad("has data_offsets that are not [begin, end]")
    if (offsets[1] - offsets[0]) != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise bad(
            f"holds {offsets[1] - offsets[0]} bytes, not the {math.prod(shape) * DTYPE_BYTES[dtype]} "
            f"its shape {shape} and dtype {dtype} take"
        )
    return TensorEntry(dtype, tuple(shape)), offsets[0], offsets[1]


def _read_exactly(stream: IO[bytes], count: int) -> bytes:
    """`count` bytes, or fewer only at the end of the stream (an HTTP body may return less per read)."""
    parts, left = [], count
    while left > 0:
        part = stream.read(min(left, 1 << 20))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_header(stream: IO[bytes], size: int, *, source: str) -> dict[str, TensorEntry]:
    """The tensors of the safetensors file `stream` (of `size` bytes), after checking that the header
    is bounded, parses, and that the tensors' bytes tile the rest of the file exactly."""
    prefix = _read_exactly(stream, 8)
    if len(prefix) < 8:
        raise SafetensorsHeaderError(f"{source}: {size} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise SafetensorsHeaderError(f"{source}: header of {length} bytes, more than the {MAX_HEADER_BYTES} allowed")
    if 8 + length > size:
        raise SafetensorsHeaderError(
            f"{source}: header of {length} bytes runs past the end of the file "
            f"({size} bytes): truncated or not safetensors"
        )
    body = _read_exactly(stream, length)
    if len(body) != length:
        raise SafetensorsHeaderError(f"{source}: truncated inside its header")
    try:
        header = json.loads(body.decode("utf-8"), object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SafetensorsHeaderError(f"{source}: header is not JSON ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{source}: header is not a JSON object")
    metadata = header.pop(METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsHeaderError(f"{source}: {METADATA} is not an object of strings")
    spans, tensors = [], {}
    for name, raw in header.items():
        entry, begin, end = _entry(name, raw, source)
        tensors[name] = entry
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise SafetensorsHeaderError(
                f"{source}: tensor {name!r} starts at byte {begin} of the data, "
                f"not {position}: overlapping or gapped offsets"
            )
        position = end
    data = size - 8 - length
    if position != data:
        raise SafetensorsHeaderError(
            f"{source}: its tensors take {position} bytes but the file holds {data} "
            f"after the header: {'truncated' if data < position else 'trailing bytes'}"
        )
    return tensors
