"""`grin serve`: serve the ticket form, the per-ticket flow and the scheduled batch flow."""

from __future__ import annotations

import typer

from cli.commands._output import reports_errors

app = typer.Typer(help="Serve grin's deployments (UI ticket form, process-ticket, scheduled batch).")


@app.callback(invoke_without_command=True)
@reports_errors
def serve() -> None:
    """Serve `file-deletion-ticket`, `process-ticket` and `batch-unlearning` (cron GRIN_BATCH_CRON)."""
    from flows.prefect_env import configure_prefect
    from infra.settings import get_settings

    get_settings()  # a bad GRIN_* variable is one line now, not a traceback in the first flow run
    configure_prefect()
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        typer.echo("error: serving deployments needs a Prefect server: set PREFECT_API_URL", err=True)
        raise typer.Exit(1)
    from flows.deployments import serve_all

    serve_all()
