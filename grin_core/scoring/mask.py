"""The GRIN mask: exactly k = ceil(p% of N) weights with the highest scores, chosen globally.

Selection never concatenates the scores (a 7B model's would be a 28 GB tensor): it bisects on the
threshold in the order-preserving integer image of float32 (at most 32 passes, each counting
`score >= t` tensor by tensor), then takes every weight above the k-th largest score and breaks
ties at it deterministically - tensor order of `scores`, then flat index - which is exactly what a
stable descending sort of the concatenated scores would pick.

A mask is saved as safetensors: per tensor, flat int indices or `numpy.packbits` bits, whichever
is smaller (indices below 1/32 density); the metadata holds shapes, p, k and a content sha256
that loading recomputes. `save` returns the file's sha256 for the registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from grin_core.models.checkpoint import file_sha256

FORMAT = "grin-mask/1"
_INT32_MAX = 2**31 - 1


class MaskIntegrityError(RuntimeError):
    """A saved mask does not match its recorded hash."""


def _key(value: float) -> int:
    """Order-preserving int of a float32: a < b (as floats) iff _key(a) < _key(b)."""
    bits = struct.unpack("<i", struct.pack("<f", value))[0]
    return bits if bits >= 0 else bits ^ 0x7FFFFFFF


def _value(key: int) -> float:
    bits = key if key >= 0 else key ^ 0x7FFFFFFF
    return struct.unpack("<f", struct.pack("<i", bits))[0]


def top_k_count(n: int, p_percent: float) -> int:
    """k = ceil(p/100 * n) in exact arithmetic (0.3 % of 1000 is 3, not 4)."""
    if not 0 < p_percent <= 100:
        raise ValueError(f"p_percent must be in (0, 100], got {p_percent}")
    return math.ceil(Fraction(str(p_percent)) * n / 100)


def _as_float32(t: torch.Tensor) -> torch.Tensor:
    return t.detach() if t.dtype == torch.float32 else t.detach().float()


def select_top_p(scores: Mapping[str, torch.Tensor], p_percent: float) -> Mask:
    """The mask of the k = ceil(p% * N) highest-scoring weights over all of `scores` (no NaNs)."""
    if not scores:
        raise ValueError("no scores to select from")
    n = sum(t.numel() for t in scores.values())
    if n == 0:
        raise ValueError("scores are empty")
    k = top_k_count(n, p_percent)
    lo_value, hi_value = math.inf, -math.inf
    for name, t in scores.items():
        x = _as_float32(t)
        if torch.isnan(x).any():
            raise ValueError(f"scores of {name} contain NaN")
        if x.numel():
            lo_value, hi_value = min(lo_value, x.min().item()), max(hi_value, x.max().item())

    def at_least(key: int) -> int:
        value = _value(key)
        return sum(int((_as_float32(t) >= value).sum()) for t in scores.values())

    lo, hi = _key(lo_value), _key(hi_value)  # invariant: at_least(lo) >= k
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if at_least(mid) >= k:
            lo = mid
        else:
            hi = mid - 1
    threshold = _value(lo)  # the k-th largest score
    tensors = {name: (_as_float32(t) > threshold).cpu() for name, t in scores.items()}
    ties = k - sum(int(m.sum()) for m in tensors.values())
    for name, t in scores.items():
        if ties <= 0:
            break
        equal = (_as_float32(t) == threshold).flatten().nonzero().squeeze(1)[:ties].cpu()
        tensors[name].view(-1)[equal] = True
        ties -= equal.numel()
    return Mask(tensors, p_percent=float(p_percent), k=k)


@dataclass
class Mask:
    """name -> bool tensor (the parameter's shape) of selected weights; k of them in all."""

    tensors: dict[str, torch.Tensor]
    p_percent: float
    k: int

    def __post_init__(self) -> None:
        self.tensors = {n: m.detach().cpu() for n, m in self.tensors.items()}
        selected = sum(int(m.sum()) for m in self.tensors.values())
        if selected != self.k:
            raise ValueError(f"mask selects {selected} weights, expected k={self.k}")
        if any(m.dtype != torch.bool for m in self.tensors.values()):
            raise ValueError("mask tensors must be bool")

    @property
    def n_eligible(self) -> int:
        return sum(m.numel() for m in self.tensors.values())

    def indices(self, name: str) -> torch.Tensor:
        """(c,) int64 flat indices of the selected entries of one tensor, ascending."""
        return self.tensors[name].flatten().nonzero().squeeze(1)

    def selected_tensors(self) -> list[str]:
        """Names of the tensors that hold at least one selected weight."""
        return [n for n, m in self.tensors.items() if bool(m.any())]

    def content_sha256(self) -> str:
        """Hash of what is selected (names, shapes, p, k, bits), independent of the file encoding."""
        digest = hashlib.sha256(json.dumps(self._header(), sort_keys=True).encode())
        for name, m in self.tensors.items():
            digest.update(name.encode() + b"\0")
            digest.update(np.packbits(m.flatten().numpy(), bitorder="little").tobytes())
        return digest.hexdigest()

    def _header(self) -> dict:
        shapes = {n: list(m.shape) for n, m in self.tensors.items()}
        return {
            "format": FORMAT,
            "order": list(self.tensors),
            "shapes": shapes,
            "p_percent": repr(self.p_percent),
            "k": self.k,
        }

    def save(self, path: str | Path) -> str:
        """Write the mask (smallest encoding per tensor) and return the file's sha256."""
        arrays, encodings = {}, {}
        for name, m in self.tensors.items():
            flat = m.flatten().numpy()
            count = int(flat.sum())
            index_dtype = np.int32 if flat.size <= _INT32_MAX else np.int64
            if count * np.dtype(index_dtype).itemsize < (flat.size + 7) // 8:
                encodings[name] = "indices"
                arrays[f"{name}/indices"] = np.flatnonzero(flat).astype(index_dtype)
            else:
                encodings[name] = "bits"
                arrays[f"{name}/bits"] = np.packbits(flat, bitorder="little")
        metadata = {
            "grin_mask": json.dumps({**self._header(), "encodings": encodings}),
            "content_sha256": self.content_sha256(),
        }
        save_file(arrays, str(path), metadata=metadata)
        return file_sha256(Path(path))

    @classmethod
    def load(cls, path: str | Path, sha256: str | None = None) -> Mask:
        """Read a saved mask; verify the file's sha256 (if given) and the recorded content hash."""
        if sha256 is not None and file_sha256(Path(path)) != sha256:
            raise MaskIntegrityError(f"{path}: file sha256 does not match the recorded one")
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        if "grin_mask" not in metadata:
            raise MaskIntegrityError(f"{path}: not a GRIN mask file")
        header = json.loads(metadata["grin_mask"])
        arrays = load_file(str(path))
        expected = {f"{n}/{header['encodings'][n]}" for n in header["order"]}
        if set(arrays) != expected:
            raise MaskIntegrityError(f"{path}: entries differ from the ones its header names")
        tensors = {}
        for name in header["order"]:
            shape = header["shapes"][name]
            size = math.prod(shape)
            if header["encodings"][name] == "indices":
                flat = np.zeros(size, dtype=bool)
                flat[arrays[f"{name}/indices"]] = True
            else:
                flat = np.unpackbits(arrays[f"{name}/bits"], count=size, bitorder="little").astype(bool)
            tensors[name] = torch.from_numpy(flat).reshape(shape)
        mask = cls(tensors, p_percent=float(header["p_percent"]), k=int(header["k"]))
        if mask.content_sha256() != metadata.get("content_sha256"):
            raise MaskIntegrityError(f"{path}: mask content does not match its recorded sha256")
        return mask

    def stats(self) -> dict:
        """Selected counts by tensor, layer index, module (q_proj, ...) and kind (attention / mlp).

        Each group has `selected`, `share` (of the k selected) and `density` (selected / weights
        in the group); plain ints, floats and strings, ready for JSON.
        """
        groups: dict[str, dict] = {"by_tensor": {}, "by_layer": {}, "by_module": {}, "by_kind": {}}
        for name, m in self.tensors.items():
            count, size = int(m.sum()), m.numel()
            layer, module, kind = parameter_site(name)
            for group, key in (("by_tensor", name), ("by_layer", str(layer)), ("by_module", module), ("by_kind", kind)):
                entry = groups[group].setdefault(key, {"selected": 0, "numel": 0})
                entry["selected"] += count
                entry["numel"] += size
        for group in groups.values():
            for entry in group.values():
                entry["share"] = entry["selected"] / self.k
                entry["density"] = entry["selected"] / entry["numel"]
        return {
            "k": self.k,
            "n_eligible": self.n_eligible,
            "p_percent": self.p_percent,
            "density": self.k / self.n_eligible,
            **groups,
        }


_ATTENTION = re.compile(r"attn|attention")
_MLP = re.compile(r"mlp|ffn|feed_?forward|^c_fc$|^fc\d$|^experts?$")


def parameter_site(name: str) -> tuple[int | None, str, str]:
    """(layer index, module name, kind) of a parameter name such as
    "model.layers.3.self_attn.q_proj.weight" -> (3, "q_proj", "attention")."""
    parts = name.split(".")
    layer = next((int(p) for p in parts if p.isdigit()), None)
    module = parts[-2] if len(parts) > 1 else parts[0]
    path = [p.lower() for p in parts[:-1]]
    if any(_ATTENTION.search(p) for p in path):
        kind = "attention"
    elif any(_MLP.search(p) for p in path):
        kind = "mlp"
    else:
        kind = "other"
    return layer, module, kind
