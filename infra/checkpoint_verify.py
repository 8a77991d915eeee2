"""Verify a checkpoint in a store before the registry records it: its manifest, every file's sha256,
and safetensors weights only.

A checkpoint directory (see `grin_core.models.checkpoint`) holds a `manifest.json` of `{"files": {name:
sha256}}` for every other file, and the manifest's own sha256 is the hash the registry keeps.
Registration streams each object through sha256 (nothing is copied to a cache) and refuses pickle
weight files outright: loading one can run arbitrary code, and nothing of grin writes them.
"""

from __future__ import annotations

import hashlib
import json
import re

from infra.errors import ChecksumMismatchError, InvalidRequestError, ObjectNotFoundError
from infra.settings import Settings
from infra.storage import CHUNK, locate

MANIFEST = "manifest.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointRefusedError(InvalidRequestError):
    """A checkpoint that is not a complete, verifiable, safetensors-only grin checkpoint."""


def verify_checkpoint_uri(uri: str, sha256: str, *, settings: Settings) -> int:
    """Raise unless the checkpoint at `uri` matches `sha256` (its manifest's hash) file by file.

    Returns the number of files verified. UnsupportedURIError for schemes other than s3:// and
    file://, ObjectNotFoundError for a prefix with nothing under it.
    """
    if not SHA256.match(sha256):
        raise CheckpointRefusedError(f"checkpoint sha256 {sha256!r} is not 64 lowercase hex digits")
    store, key = locate(uri, settings=settings)
    prefix = key.rstrip("/")
    keys = store.list(prefix + "/")
    names = sorted(k[len(prefix) + 1 :] for k in keys)
    if not names:
        raise ObjectNotFoundError(f"no checkpoint at {uri}")
    pickles = [n for n in names if n.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise CheckpointRefusedError(
            f"{uri} holds pickle weights ({pickles[0]}); only safetensors checkpoints are accepted"
        )
    if MANIFEST not in names:
        raise CheckpointRefusedError(f"{uri} has no {MANIFEST}; refusing an unverifiable checkpoint")
    body = store.get_bytes(f"{prefix}/{MANIFEST}")
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha256:
        raise ChecksumMismatchError(f"{uri}: manifest sha256 is {actual}, not the given {sha256}")
    try:
        recorded = json.loads(body)["files"]
        if not isinstance(recorded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise CheckpointRefusedError(f"{uri}: {MANIFEST} is not a grin manifest") from None
    present = set(names) - {MANIFEST}
    for name in sorted(set(recorded) | present):
        if name not in present:
            raise CheckpointRefusedError(f"{uri}: {name} is in the manifest but missing")
        if name not in recorded:
            raise CheckpointRefusedError(f"{uri}: {name} is not in the manifest")
    if not any(n.endswith(".safetensors") for n in present):
        raise CheckpointRefusedError(f"{uri} holds no .safetensors weights")
    for name in sorted(present):
        digest = hashlib.sha256()
        with store.open(f"{prefix}/{name}") as stream:
            for block in iter(lambda: stream.read(CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != recorded[name]:
            raise ChecksumMismatchError(f"{uri}: sha256 of {name} does not match its manifest")
    return len(present)
