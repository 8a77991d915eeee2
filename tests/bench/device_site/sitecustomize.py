"""Put on PYTHONPATH by tests/bench/test_gpu_run.py: the device image lacks the service's packages, so
the GPU run must run without our service layers (an import of one fails here) and must not import
a service package (a process that did exits 97). Optional imports of other libraries are theirs."""

import atexit
import importlib.abc
import os
import sys

LAYERS = {"infra", "tasks", "flows", "policy", "cli"}
# boto3 is not here: accelerate imports it when it is installed (its SageMaker config), as it may
SERVICE = {"prefect", "sqlalchemy", "alembic", "psycopg2", "fastapi", "fpdf", "pydantic_settings"}


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in LAYERS:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the device)", name=name)


def _check() -> None:
    imported = sorted(SERVICE & {name.partition(".")[0] for name in sys.modules})
    if imported:
        sys.stderr.write(f"imported what the device lacks: {imported}\n")
        sys.stderr.flush()
        os._exit(97)


sys.meta_path.insert(0, _Absent())
atexit.register(_check)
