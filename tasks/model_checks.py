"""A model's content checked before `grin model import` or `grin model register` writes anything.

infra reads the files without torch (`infra.checkpoint_content`: kinds, pickles, safetensors
headers); grin_core compares the tensor table with the architecture the config names and tries
the tokenizer (`grin_core.models.architecture_check`). Whatever is wrong comes back as one
InvalidRequestError line.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from grin_core.models.architecture_check import ArchitectureMismatchError, check_model_directory
from infra.checkpoint_content import as_plain, directory_tensors, stored_checkpoint_tensors
from infra.checkpoint_verify import MANIFEST
from infra.errors import InvalidRequestError
from infra.settings import Settings
from infra.storage import locate


def check_importable_directory(directory: Path, source: str) -> str:
    """The architecture a model directory holds, or InvalidRequestError saying why it cannot be imported."""
    try:
        return check_model_directory(directory, as_plain(directory_tensors(directory)))
    except (InvalidRequestError, ArchitectureMismatchError) as exc:
        raise InvalidRequestError(f"cannot import {source}: {exc}") from None


def check_registrable_checkpoint(uri: str, sha256: str, *, settings: Settings) -> str:
    """The architecture of a checkpoint in a store whose files `infra.checkpoint_verify` has matched to
    `sha256`, or InvalidRequestError; only headers, config and tokenizer files are read."""
    store, key = locate(uri, settings=settings)
    recorded = json.loads(store.get_bytes(f"{key.rstrip('/')}/{MANIFEST}", expected_sha256=sha256))["files"]
    with tempfile.TemporaryDirectory(prefix="grin-register-") as tmp:
        try:
            tensors = stored_checkpoint_tensors(uri, recorded, settings=settings, into=Path(tmp))
            return check_model_directory(tmp, as_plain(tensors))
        except (InvalidRequestError, ArchitectureMismatchError) as exc:
            raise InvalidRequestError(f"{uri}: {exc}") from None
