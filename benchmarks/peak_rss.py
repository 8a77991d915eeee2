"""Peak resident memory of one stage of a long-lived process.

Linux keeps a process's high-water mark (VmHWM) and lets the process reset it by writing "5" to
/proc/self/clear_refs, so a stage's own peak can be read without a sampling thread. Where that is
not possible the process-lifetime peak of `resource.getrusage` is reported and flagged.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path
from typing import Self

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _hwm_kib() -> int | None:
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


class PeakRss:
    """`with PeakRss() as peak: ...` then `peak.mb` (MiB) and `peak.stage_only` (False when the
    value is the process-lifetime peak because the high-water mark could not be reset)."""

    def __init__(self) -> None:
        self.mb: float | None = None
        self.stage_only = False

    def __enter__(self) -> Self:
        try:
            _CLEAR_REFS.write_text("5")
            self.stage_only = _hwm_kib() is not None
        except OSError:
            self.stage_only = False
        return self

    def __exit__(self, *exc) -> None:
        kib = _hwm_kib() if self.stage_only else None
        if kib is None:
            self.stage_only = False
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            kib = peak / 1024 if sys.platform == "darwin" else peak  # macOS reports bytes
        self.mb = round(kib / 1024, 1)
