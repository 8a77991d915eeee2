"""A flow waiting on a GPU stage gives up soon after the worker stops beating (not after the hours-long
stage timeout), and keeps waiting while a worker beats. Prefect's future is stood in for; the store
and the heartbeats are the real ones."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import pytest
from prefect import task
from prefect.runtime import task_run

from infra.storage import open_store
from tasks.dispatch import WorkerUnavailableError, run_ml_stage
from tasks.worker_liveness import beat, host_alive, last_beat, reports_stage, start_heartbeat


@dataclass
class _State:
    final: bool = False

    def is_running(self) -> bool:
        return True

    def is_final(self) -> bool:
        return self.final


@dataclass
class _Future:
    """A stage that a worker took and that ends after `runs_s` (never, when None)."""

    runs_s: float | None
    started: float = field(default_factory=time.monotonic)

    @property
    def state(self) -> _State:
        return _State(self.runs_s is not None and time.monotonic() - self.started >= self.runs_s)

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.05))

    def result(self, timeout: float) -> str:
        return "stage result"


@dataclass
class _Stage:
    runs_s: float | None
    name: str = "unlearn-weights"

    def delay(self, **parameters: object) -> _Future:
        return _Future(self.runs_s)


@pytest.fixture
def worker_settings(make_settings, sqlite_url, clean_grin_environment):
    return make_settings(
        database_url=sqlite_url, gpu_dispatch="worker", gpu_worker_dead_after_s=2.0, gpu_pickup_timeout_s=5
    )


def test_a_stage_whose_worker_stopped_beating_fails_within_the_dead_after_time(worker_settings):
    beat(open_store(worker_settings), "gpu-1", now=time.time() - 30)
    started = time.monotonic()
    with pytest.raises(WorkerUnavailableError, match="its GPU worker has sent no heartbeat for 3"):
        run_ml_stage(_Stage(runs_s=None), settings=worker_settings)
    assert time.monotonic() - started < 2


def test_a_stage_waits_while_a_worker_beats(worker_settings):
    stop = start_heartbeat(worker_settings)
    try:
        assert run_ml_stage(_Stage(runs_s=1.5), settings=worker_settings) == "stage result"
        assert last_beat(open_store(worker_settings)) > time.time() - 1
    finally:
        stop.set()


def test_no_heartbeat_at_all_keeps_the_old_behaviour(worker_settings):
    assert run_ml_stage(_Stage(runs_s=0.3), settings=worker_settings) == "stage result"


@dataclass
class _NamedFuture(_Future):
    task_run_id: str = "stage-7"


@dataclass
class _NamedStage(_Stage):
    def delay(self, **parameters: object) -> _Future:
        return _NamedFuture(self.runs_s)


def test_the_death_of_the_worker_running_the_stage_is_caught_while_another_beats(worker_settings):
    store = open_store(worker_settings)
    stop = start_heartbeat(worker_settings)  # a healthy worker with nothing of ours
    try:
        beat(store, "gpu-2", now=time.time() - 30)  # the one that took the stage, dead
        body = json.loads(store.get_bytes("workers/gpu-2.json"))
        store.put_bytes("workers/gpu-2.json", json.dumps({**body, "stages": ["stage-7"]}).encode())
        started = time.monotonic()
        with pytest.raises(WorkerUnavailableError, match="its GPU worker has sent no heartbeat"):
            run_ml_stage(_NamedStage(runs_s=None), settings=worker_settings)
        assert time.monotonic() - started < 2
    finally:
        stop.set()


def test_a_running_stage_is_named_in_its_workers_heartbeat(worker_settings, prefect_api, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    store = open_store(worker_settings)

    @task
    @reports_stage
    def stage() -> str:
        beat(store, "gpu-1")
        return str(task_run.id)

    stage_id = stage()
    assert json.loads(store.get_bytes("workers/gpu-1.json"))["stages"] == [stage_id]
    beat(store, "gpu-1")
    assert json.loads(store.get_bytes("workers/gpu-1.json"))["stages"] == []  # done: no longer named


def test_a_workers_healthcheck_reads_its_own_hosts_heartbeat(worker_settings):
    store, now = open_store(worker_settings), time.time()
    beat(store, "gpu-host-11", now=now - 30)  # this host's, stale
    beat(store, "other-host-12", now=now)  # another host's, fresh
    assert not host_alive(store, "gpu-host", dead_after_s=10, now=now)
    beat(store, "gpu-host-13", now=now - 1)
    assert host_alive(store, "gpu-host", dead_after_s=10, now=now)
    assert not host_alive(store, "cpu-host", dead_after_s=10, now=now)
    assert not host_alive(store, "gpu", dead_after_s=10, now=now)  # a prefix of another host's name
