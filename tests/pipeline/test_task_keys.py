"""A GPU worker only picks up a stage whose Prefect task key it computes the same way as the flow:
the key hashes the task's code, so it must not depend on the process's hash seed."""

from __future__ import annotations

import subprocess
import sys

PROBE = "from flows.worker import ML_STAGES; print(sorted(t.task_key for t in ML_STAGES))"


def _keys(seed: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_the_ml_stages_task_keys_do_not_depend_on_the_hash_seed():
    assert _keys("1") == _keys("2")
