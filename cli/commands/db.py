"""`grin db`: bring the database schema to the version this code expects."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.commands._output import JsonFlag, emit_json, reports_errors

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
        typer.echo(f"{result['database']} is at revision {result['revision'] or 'base'} ({revision_asked})")


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
    drop_audit_data: Annotated[
        bool,
        typer.Option(
            "--drop-audit-data",
            help="Allow a downgrade that drops the audit trail (it is recorded, and the head published first).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Revert migrations down to REVISION; one that would drop the audit trail needs --drop-audit-data."""
    import os

    from cli.commands._session import transaction
    from infra import audit
    from infra.audit_heads import check_latest_published_held, publish_head
    from infra.db.migrate import AUDIT_REVISION, reverted_by
    from infra.db.migrate import downgrade as run_downgrade
    from infra.errors import InvalidRequestError
    from infra.settings import get_settings
    from infra.storage import open_store

    settings = get_settings()
    reverted = reverted_by(settings.database_url, revision)
    if AUDIT_REVISION in reverted:
        if not drop_audit_data:
            raise InvalidRequestError(
                f"downgrading to {revision} drops the audit trail (revision {AUDIT_REVISION}); "
                "pass --drop-audit-data to do it anyway"
            )
        # The record of the drop outlives it in the store: `audit verify --expect-head store` then
        # reports the new, empty chain as truncated.
        with transaction() as session:
            check_latest_published_held(session=session, store=open_store(settings))
            audit.append(
                "db.downgrade",
                {"to": revision, "reverts": reverted, "actor": os.environ.get("USER") or "operator"},
                session=session,
            )
            head = audit.head(session=session)
        publish_head(head, store=open_store(settings))
    run_downgrade(settings.database_url, revision)
    _report(revision, as_json)
