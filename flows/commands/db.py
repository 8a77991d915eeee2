"""`grin db`: bring the database schema to the version this code expects."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.commands._output import JsonFlag, emit_json, reports_errors

app = typer.Typer(help="Create or migrate the database schema.", no_args_is_help=True)


def _report(revision_asked: str, as_json: bool) -> None:
    from sqlalchemy.engine import make_url

    from infra.db.migrate import current_revision
    from infra.settings import get_settings

    url = get_settings().database_url
    result = {
        "database": make_url(url).render_as_string(hide_password=True),
        "revision": current_revision(url),
    }
    if as_json:
        emit_json(result)
    else:
        typer.echo(
            f"{result['database']} is at revision {result['revision'] or 'base'} ({revision_asked})"
        )


@app.command()
@reports_errors
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    as_json: JsonFlag = False,
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from infra.db.migrate import upgrade as run_upgrade
    from infra.settings import get_settings

    run_upgrade(get_settings().database_url, revision)
    _report(revision, as_json)


@app.command()
@reports_errors
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
    as_json: JsonFlag = False,
) -> None:
    """Revert migrations down to REVISION (`base` drops every table: the data goes with it)."""
    from infra.db.migrate import downgrade as run_downgrade
    from infra.settings import get_settings

    run_downgrade(get_settings().database_url, revision)
    _report(revision, as_json)
