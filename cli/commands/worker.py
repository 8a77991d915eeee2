"""`grin worker`: serve the ML stages (GRI scoring, unlearning, evaluation, training) on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.commands._output import reports_errors

app = typer.Typer(help="Run a GPU worker that serves the pipeline's ML stages.")


@app.callback(invoke_without_command=True)
@reports_errors
def worker(
    limit: Annotated[int, typer.Option(min=1, help="Stages run at once (one per GPU is safe).")] = 1,
    alive: Annotated[
        bool,
        typer.Option(
            "--alive",
            help="Do not serve: exit 0 if a worker on this host has sent a heartbeat within "
            "GRIN_GPU_WORKER_DEAD_AFTER_S, else 1 (a container healthcheck).",
        ),
    ] = False,
) -> None:
    """Serve the ML stages as Prefect background tasks until interrupted.

    Needs a Prefect server (PREFECT_API_URL) and result storage shared with the flows
    (PREFECT_RESULTS_LOCAL_STORAGE_PATH on a shared volume); the flows send work here when
    GRIN_GPU_DISPATCH is `worker`, or `auto` with a server configured.
    """
    from infra.settings import get_settings

    get_settings()  # a bad GRIN_* variable is one line now, not a traceback in the first stage
    if alive:
        _exit_alive()
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        typer.echo("error: a worker needs a Prefect server: set PREFECT_API_URL", err=True)
        raise typer.Exit(1)
    from flows.worker import run_worker
    from tasks.worker_liveness import start_heartbeat

    start_heartbeat()  # flows waiting on this worker's stages give up soon after it dies
    run_worker(limit=limit)


def _exit_alive() -> None:
    import socket

    from infra.settings import get_settings
    from infra.storage import open_store
    from tasks.worker_liveness import host_alive

    settings = get_settings()
    ok = host_alive(open_store(settings), socket.gethostname(), settings.gpu_worker_dead_after_s)
    typer.echo(
        "alive" if ok else f"no heartbeat from {socket.gethostname()} within {settings.gpu_worker_dead_after_s:g} s",
        err=not ok,
    )
    raise typer.Exit(0 if ok else 1)
