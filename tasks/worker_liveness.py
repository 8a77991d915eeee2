"""GPU worker liveness: each `grin worker` writes a heartbeat object, and a flow waiting on a stage
stops waiting once no worker has beaten for `gpu_worker_dead_after_s`.

Without it a flow whose worker was killed waits out the whole stage timeout (hours) while its own
lease heartbeat keeps the ticket; with it the stage fails as an infrastructure error within about a
minute, and the ticket is re-queued. The heartbeat is `workers/<host>-<pid>.json` in the service's
store: `{"worker", "time"}` (epoch seconds), rewritten every quarter of the dead-after time.
With several workers, one that dies while others beat is only caught by the stage timeout: the
beat says that some worker is alive, not which one took the stage.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

from infra.errors import ObjectNotFoundError
from infra.settings import Settings, get_settings
from infra.storage import ObjectStore, open_store

PREFIX = "workers/"
log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def beat(store: ObjectStore, worker: str, now: float | None = None) -> None:
    body = {"worker": worker, "time": time.time() if now is None else now}
    store.put_bytes(f"{PREFIX}{worker}.json", json.dumps(body).encode())


def last_beat(store: ObjectStore) -> float | None:
    """The newest heartbeat time of any worker (epoch seconds), or None when none ever beat."""
    newest = None
    for key in store.list(PREFIX):
        try:
            beat_time = float(json.loads(store.get_bytes(key))["time"])
        except (ObjectNotFoundError, ValueError, KeyError, TypeError):
            continue
        newest = beat_time if newest is None else max(newest, beat_time)
    return newest


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
