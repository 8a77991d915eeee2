"""`grin audit`: check and read the hash-chained audit trail."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.commands._output import JsonFlag, emit_json, emit_table, reports_errors

app = typer.Typer(help="Verify and read the audit trail.", no_args_is_help=True)


@app.command()
@reports_errors
def verify(as_json: JsonFlag = False) -> None:
    """Recompute the whole chain; exit 1 and name the first bad record if it does not hold."""
    from dataclasses import asdict

    from flows.commands._session import transaction
    from infra import audit

    with transaction() as session:
        check = audit.verify(session=session)
    if as_json:
        emit_json(asdict(check))
    elif check.ok:
        typer.echo(f"audit chain intact: {check.records} records, head {check.head_hash}")
    else:
        typer.echo(f"audit chain BROKEN at record {check.broken_id}: {check.reason}", err=True)
    if not check.ok:
        raise typer.Exit(1)


@app.command()
@reports_errors
def log(
    ticket: Annotated[int | None, typer.Option(help="Only records about this ticket.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Print audit records in chain order."""
    from flows.commands._session import transaction
    from infra import audit

    with transaction() as session:
        rows = [
            {
                "id": r.id,
                "created_at": r.created_at.isoformat(),
                "kind": r.kind,
                "ticket_id": r.ticket_id,
                "payload": r.payload,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in audit.records(session=session, ticket_id=ticket, limit=limit)
        ]
    if as_json:
        emit_json(rows)
        return
    table = [
        (
            r["id"],
            r["created_at"][:19],
            r["kind"],
            r["ticket_id"],
            json.dumps(r["payload"], sort_keys=True),
            r["hash"][:12],
        )
        for r in rows
    ]
    emit_table("Audit trail", ["id", "at", "kind", "ticket", "payload", "hash"], table)
