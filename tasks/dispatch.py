"""Where the ML stages run: in a GPU worker process when a Prefect server is configured, else here.

Worker dispatch uses Prefect background tasks (`task.delay()` + `grin worker` serving them): about
half a second per dispatch, and the worker keeps its imports and device warm between tickets. A
process work pool would start a new process per stage (7-10 s here) and reload everything.
The embedded default (no server) runs the same task functions in-process.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import Task
from prefect.settings import PREFECT_API_URL

from infra.settings import Settings, get_settings
from infra.storage import open_store


class WorkerUnavailableError(RuntimeError):
    """No GPU worker took the stage in time: an infrastructure failure, so the ticket is retried."""


def gpu_mode(settings: Settings | None = None) -> Literal["inline", "worker"]:
    mode = (settings or get_settings()).gpu_dispatch
    if mode == "auto":
        return "worker" if PREFECT_API_URL.value() else "inline"
    return mode


def run_ml_stage(task: Task, settings: Settings | None = None, **parameters: Any) -> Any:
    """Run `task` with `parameters` where ML work belongs and return its result."""
    settings = settings or get_settings()
    if gpu_mode(settings) == "inline":
        return task(**parameters)
    future = task.delay(**parameters)
    _wait_for_pickup(future, task.name, settings.gpu_pickup_timeout_s)
    _wait_while_a_worker_lives(future, task.name, settings)
    return future.result(timeout=settings.gpu_stage_timeout_s)


def _wait_while_a_worker_lives(future: Any, name: str, settings: Settings) -> None:
    """Wait for the stage to end; WorkerUnavailableError once the worker running it (or, before its beat
    names the stage, every worker) has not beaten for the dead-after time."""
    from tasks.worker_liveness import last_beat

    store = open_store(settings)
    dead_after = settings.gpu_worker_dead_after_s
    deadline = time.monotonic() + settings.gpu_stage_timeout_s
    while time.monotonic() < deadline:
        future.wait(timeout=min(dead_after / 2, 15.0))
        if future.state.is_final():
            return
        stage = getattr(future, "task_run_id", None)
        newest = last_beat(store, str(stage) if stage else None)
        if newest is not None and time.time() - newest > dead_after:
            raise WorkerUnavailableError(
                f"{name}: its GPU worker has sent no heartbeat for {time.time() - newest:.0f} s; "
                "it died, so the stage is given up and the ticket retried"
            )


def _wait_for_pickup(future: Any, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = future.state
        if state.is_running() or state.is_final():
            return
        time.sleep(0.25)
    raise WorkerUnavailableError(
        f"no GPU worker picked up {name} within {timeout_s:.0f} s; start one with `grin worker`"
    )
