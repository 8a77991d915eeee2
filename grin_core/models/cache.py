"""A directory cache keyed by a content hash, safe when test sessions race to fill it.

An entry is built in a private temporary directory and renamed into place: a reader sees either
no entry or a complete one. A builder holds an advisory lock on the entry, so a second process asking for
the same entry waits for the first one's instead of building it again (two test processes, two workers).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def content_key(*parts: object) -> str:
    """sha256 of the canonical JSON of `parts` (dicts sorted), the first 16 hex digits."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_dir(cache_dir: str | Path, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return (`cache_dir/key`, hit); on a miss `build(tmp)` fills a temp dir renamed into place."""
    target = Path(cache_dir) / key
    if target.is_dir():
        return target, True
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{key}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        if target.is_dir():  # another process built it while this one waited
            return target, True
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
        try:
            build(tmp)
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # a real failure, not a lost race
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            # a waiter still holding the old file finds the entry; a newcomer finds it before locking
            lock_path.unlink(missing_ok=True)
    return target, False
