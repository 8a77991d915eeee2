"""Named fault-injection points for the crash-safety tests: the process kills itself (SIGKILL) there.

`GRIN_FAILPOINTS=checkpoint.upload,register.before` arms them; unset (production) each is a no-op.
A kill at a point no status marks (half an upload, between evaluation and registration) is what
tests/pipeline/test_kill_recovery.py needs to show that such a run is recovered too.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({"checkpoint.upload", "register.before"})


def failpoint(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}")
    if name in os.environ.get("GRIN_FAILPOINTS", "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
