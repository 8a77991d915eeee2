"""Prefect defaults for grin's processes, set before Prefect is imported.

On these machines the ephemeral API server needs more than Prefect's 20 s default to start on two
busy cores, and offline telemetry only produces error lines. Variables already set win.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def configure_prefect(**overrides: str) -> None:
    for name, value in {**DEFAULTS, **overrides}.items():
        os.environ.setdefault(name, value)
