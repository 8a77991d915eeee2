"""`grin audit`: check and read the hash-chained audit trail."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.commands._output import JsonFlag, emit_json, emit_table, reports_errors

app = typer.Typer(help="Verify and read the audit trail.", no_args_is_help=True)


def _pinned(expect_head: str):
    """A head from a hash, a JSON file written by `grin audit head --json`, or `store` (every published one)."""
    import re
    from pathlib import Path

    from infra.audit import ChainHead
    from infra.errors import InvalidRequestError

    if expect_head == "store":  # every head the service published, not only the newest
        from infra.audit_heads import published_heads
        from infra.settings import get_settings
        from infra.storage import open_store

        heads = published_heads(store=open_store(get_settings()))
        if not heads:
            raise InvalidRequestError("no audit head has been published to the store yet")
        return heads
    if re.fullmatch(r"[0-9a-f]{64}", expect_head):
        return ChainHead(id=None, hash=expect_head, count=0, time=None)
    try:
        return ChainHead.from_json(json.loads(Path(expect_head).read_text()))
    except OSError as exc:
        raise InvalidRequestError(f"--expect-head {expect_head}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequestError(f"--expect-head {expect_head}: not a head file (JSON with id, hash, count)") from None


@app.command()
@reports_errors
def head(
    publish: Annotated[bool, typer.Option("--publish", help="Also write it to the store under audit/heads/.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Print the chain's head (id, hash, count, time): pin it elsewhere, verify against it later."""
    from dataclasses import asdict

    from cli.commands._session import transaction
    from infra import audit

    with transaction() as session:
        current = audit.head(session=session)
        published = None
        if publish:  # only while the newest published head is still in the chain
            from infra.audit_heads import publish_current_head
            from infra.settings import get_settings
            from infra.storage import open_store

            published = publish_current_head(session=session, store=open_store(get_settings()))
    if as_json:
        emit_json({**asdict(current), **({"published": published} if publish else {})})
    else:
        typer.echo(f"audit head: record {current.id}, {current.count} records, hash {current.hash}")


@app.command()
@reports_errors
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            help="A head pinned earlier: its hash, a file from `grin audit head --json`, or "
            "`store` for every head published to the object store. Catches truncation and rewrites."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recompute the whole chain and check ticket rows against it; exit 1 naming the first bad record."""
    from dataclasses import asdict

    from cli.commands._session import transaction
    from infra import audit

    pinned = _pinned(expect_head) if expect_head else None
    with transaction() as session:
        check = audit.verify(session=session, expect=pinned)
    if as_json:
        emit_json(asdict(check))
    elif check.ok:
        typer.echo(f"audit chain intact: {check.records} records, head {check.head_hash}")
    else:
        where = f" at record {check.broken_id}" if check.broken_id is not None else ""
        typer.echo(f"audit chain BROKEN{where}: {check.reason}", err=True)
    if not check.ok:
        raise typer.Exit(1)


@app.command("verify-exact")
@reports_errors
def verify_exact(
    version: Annotated[str, typer.Argument(help="An exact (rebuilt) version: name@N or name@alias.")],
    as_json: JsonFlag = False,
) -> None:
    """Re-derive an exact version's manifest from the line's origin manifest and the deletions on the audit
    chain; check its recorded, audited and stored manifest hashes and that no covered ticket's record is in
    it. Exit 1 naming what differs."""
    from cli.commands._session import transaction
    from tasks.exact_manifest import verify_exact as verify

    with transaction() as session:
        found = verify(version, session=session)
    if as_json:
        emit_json(found.as_dict())
    elif found.ok:
        typer.echo(
            f"{found.model}@{found.version} is exact: manifest {found.recorded_sha256} re-derived from "
            f"v{found.base_version}'s minus tickets {found.lineage_tickets}; covers {found.covered}"
        )
    else:
        typer.echo(f"{found.model}@{found.version} NOT verified: " + "; ".join(found.problems), err=True)
    if not found.ok:
        raise typer.Exit(1)


@app.command()
@reports_errors
def log(
    ticket: Annotated[int | None, typer.Option(help="Only records about this ticket.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, oldest first.")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Print audit records in chain order."""
    from cli.commands._session import transaction
    from infra import audit

    with transaction() as session:
        rows = [audit.as_dict(r) for r in audit.records(session=session, ticket_id=ticket, limit=limit)]
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
