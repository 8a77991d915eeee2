"""GPU worker liveness: each `grin worker` writes a heartbeat object, and a flow waiting on a stage
stops waiting once no worker has beaten for `gpu_worker_dead_after_s`.

Without it a flow whose worker was killed waits out the whole stage timeout (hours) while its own
lease heartbeat keeps the ticket; with it the stage fails as an infrastructure error within about a
minute, and the ticket is re-queued. The heartbeat is `workers/<host>-<pid>.json` in the service's
store: `{"worker", "time", "stages"}` (epoch seconds; the Prefect task-run ids of the ML stages it
is running), rewritten every quarter of the dead-after time. A flow waits on the beat of the worker
whose `stages` name its stage, so with several workers the death of the one running it is caught
while the others beat; until a beat names the stage (the first seconds after pickup), any worker's
beat counts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from infra.errors import ObjectNotFoundError
from infra.settings import Settings, get_settings
from infra.storage import ObjectStore, open_store

PREFIX = "workers/"
log = logging.getLogger(__name__)
_RUNNING: set[str] = set()  # task-run ids of the ML stages this process runs now
F = TypeVar("F", bound=Callable[..., Any])


def reports_stage(fn: F) -> F:
    """Marks an ML stage: while it runs, this process's heartbeat names its task run."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from prefect.runtime import task_run

        stage = str(task_run.id) if task_run.id else None
        if stage:
            _RUNNING.add(stage)
        try:
            return fn(*args, **kwargs)
        finally:
            _RUNNING.discard(stage)

    return run  # type: ignore[return-value]


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def beat(store: ObjectStore, worker: str, now: float | None = None) -> None:
    body = {"worker": worker, "time": time.time() if now is None else now, "stages": sorted(_RUNNING)}
    store.put_bytes(f"{PREFIX}{worker}.json", json.dumps(body).encode())


def last_beat(store: ObjectStore, stage: str | None = None) -> float | None:
    """The heartbeat time (epoch seconds) of the worker running `stage`, or, when no beat names it,
    the newest of any worker; None when none ever beat."""
    newest = None
    for key in store.list(PREFIX):
        try:
            body = json.loads(store.get_bytes(key))
            beat_time = float(body["time"])
        except (ObjectNotFoundError, ValueError, KeyError, TypeError):
            continue
        if stage is not None and stage in (body.get("stages") or []):
            return beat_time
        newest = beat_time if newest is None else max(newest, beat_time)
    return newest


def host_alive(store: ObjectStore, host: str, dead_after_s: float, now: float | None = None) -> bool:
    """Whether a worker on `host` has beaten within `dead_after_s` (a container's healthcheck)."""
    for key in store.list(f"{PREFIX}{host}-"):
        if key.removeprefix(PREFIX).removesuffix(".json").rsplit("-", 1)[0] != host:  # host "gpu" is not "gpu-2"
            continue
        try:
            if (time.time() if now is None else now) - float(json.loads(store.get_bytes(key))["time"]) <= dead_after_s:
                return True
        except (ObjectNotFoundError, ValueError, KeyError, TypeError):
            continue
    return False


def start_heartbeat(settings: Settings | None = None) -> threading.Event:
    """Beat from a daemon thread until the process ends (or the returned event is set)."""
    settings = settings or get_settings()
    store, worker, stop = open_store(settings), worker_id(), threading.Event()
    interval = max(settings.gpu_worker_dead_after_s / 4, 0.5)

    def run() -> None:
        while True:
            try:
                beat(store, worker)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                log.warning("worker heartbeat failed: %s", exc)
            if stop.wait(interval):
                store.delete(f"{PREFIX}{worker}.json")
                return

    threading.Thread(target=run, name="worker-heartbeat", daemon=True).start()
    return stop
