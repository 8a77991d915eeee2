"""Finished parts of a benchmark run kept on disk, so a run that is killed resumes where it stopped.

A device lease is minutes long and a 200-author split outlasts one call; without this, a rerun
would redo every evaluation. Each part (the retrained model's evaluation, the target's, one
method) is stored as `<dir>/<name>.json` under a key of everything it depends on: the run's
settings, the two checkpoints (content-addressed by the model cache) and the part's own config.
The key includes a digest of the code that computes the parts (grin_core/, benchmarks/): a part
stored by other code is run again. A part whose key differs is overwritten. Values are the
report's JSON, numbers only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from grin_core.models.cache import content_key

Log = Callable[[str], None]


def _plain(value):
    """The value as JSON gives it back (numpy scalars to floats, tuples to lists), so a part read
    from disk equals the one just computed."""
    return json.loads(json.dumps(value, default=_number))


def _number(value):
    """numpy / torch scalars as numbers; anything else as the report writes it (json default=str)."""
    return value.item() if hasattr(value, "item") else str(value)


def source_digest() -> str:
    """sha256 over the Python sources of grin_core/ and benchmarks/: the code behind every part."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted([*root.glob("grin_core/**/*.py"), *root.glob("benchmarks/**/*.py")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class Memo:
    """`run(name, depends_on, compute)`: the stored part if its key matches, else compute and store it."""

    def __init__(self, directory: Path | None, base: Mapping, log: Log) -> None:
        self.directory, self.base, self.log = directory, dict(base), log
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, depends_on: Mapping, compute: Callable[[], dict]) -> dict:
        if self.directory is None:
            return compute()
        key = content_key(self.base, name, depends_on)
        path = self.directory / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".json")
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                self.log(f"{name}: from the earlier run ({path.name})")
                return stored["value"]
        value = _plain(compute())
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"key": key, "name": name, "value": value}, indent=1))
        partial.replace(path)
        return value
