"""`grin demo`: the whole pipeline on the embedded defaults (SQLite, local store, ephemeral Prefect)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from cli.commands._output import reports_errors

app = typer.Typer(help="Train (or reuse) a small TOFU model and answer one deletion ticket end to end.")


@app.callback(invoke_without_command=True)
@reports_errors
def demo(
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the run's summary here.")] = None,
) -> None:
    """Run the demo in a fresh `<state_dir>/demo`; the trained model is cached in `<state_dir>/cache`."""
    from infra.settings import get_settings

    base = get_settings()
    demo_dir = base.state_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)  # every demo starts from an empty registry and queue
    os.environ.update({"GRIN_STATE_DIR": str(demo_dir), "GRIN_CACHE_DIR": str(base.cache_dir)})
    for name in ("GRIN_DATABASE_URL", "GRIN_STORAGE_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("GRIN_GPU_DISPATCH", "inline")
    get_settings.cache_clear()
    from flows.prefect_env import configure_prefect

    (demo_dir / "prefect").mkdir(parents=True)
    configure_prefect(PREFECT_HOME=str(demo_dir / "prefect"))
    from cli.demo import run_demo, write_summary

    summary = run_demo(get_settings())
    if json_path is not None:
        write_summary(summary, json_path)
        typer.echo(f"summary written to {json_path}", err=True)
    if not (summary["outcome"] == "completed" and summary["audit_verified"]):
        raise typer.Exit(1)
