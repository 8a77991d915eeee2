"""`grin ticket`: file deletion requests and follow them.

The subject of a ticket is personal data: `show` prints it to the person who asks, `list`
never does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.commands._output import JsonFlag, emit_json, emit_table, fail, reports_errors
from infra.ticket_status import TicketStatus
from policy.methods import methods_help
from policy.round_setting import overrides_help

if TYPE_CHECKING:
    from infra.db.models import Ticket

app = typer.Typer(help="File deletion requests and follow their progress.", no_args_is_help=True)

STATUSES = ", ".join(TicketStatus)


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """What a ticket shows without its subject."""
    return {
        "ticket_id": ticket.id,
        "status": ticket.status.value,
        "model_ref": ticket.model_ref,
        "method": ticket.method.value,
        "attempts": ticket.attempts,
        "requested_by": ticket.requested_by,
        "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "error_reason": ticket.error_reason,
        "result_version_id": ticket.result_version_id,
    }


def _read_request_file(path: str) -> dict[str, Any]:
    from infra.errors import InvalidRequestError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read --request {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"--request {path} is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"--request {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"--request {path} must hold a JSON object")
    return data


def _hparams(pairs: list[str]) -> dict[str, Any]:
    from infra.errors import InvalidRequestError

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"--hparam {pair!r} must be KEY=VALUE")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw  # left to the request model to accept or refuse
    return values


def _request_data(request: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The --request file's fields with the flags laid over them (each --hparam overrides one key)."""
    data = _read_request_file(request) if request else {}
    if flags["hparams"] and isinstance(data.get("hparams"), dict):
        flags = {**flags, "hparams": {**data["hparams"], **flags["hparams"]}}
    data.update({key: value for key, value in flags.items() if value is not None})
    return data


@app.command("file")
@reports_errors
def file_ticket(
    request: Annotated[
        str | None,
        typer.Option("--request", help="JSON file holding the request ('-' for stdin); flags override it."),
    ] = None,
    subject: Annotated[str | None, typer.Option(help="Whom the request is about (stored, never logged).")] = None,
    model: Annotated[str | None, typer.Option(help="NAME, NAME@ALIAS or NAME@VERSION.")] = None,
    forget: Annotated[list[str] | None, typer.Option(help="URI of forget-set records (repeat for several).")] = None,
    retain: Annotated[
        list[str] | None, typer.Option(help="URI of retain-set records (repeat); default: sampled.")
    ] = None,
    keywords: Annotated[str | None, typer.Option(help="URI of key phrases for keyword accuracy.")] = None,
    method: Annotated[str | None, typer.Option(help=methods_help())] = None,
    hparam: Annotated[list[str] | None, typer.Option(help=overrides_help())] = None,
    requested_by: Annotated[str | None, typer.Option(help="Who files the request.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="Why, e.g. 'GDPR Art. 17'.")] = None,
    due_date: Annotated[str | None, typer.Option(help="Deadline, YYYY-MM-DD.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Filing twice with the same key files once.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """File a deletion request: checked against the registry and the stores, then queued."""
    from cli.commands._session import transaction
    from infra import intake
    from infra.settings import get_settings

    flags = {
        "subject": subject,
        "model": model,
        "forget_uris": forget or None,
        "retain_uris": retain or None,
        "keywords_uri": keywords,
        "method": method,
        "hparams": _hparams(hparam) if hparam else None,
        "requested_by": requested_by,
        "legal_basis": legal_basis,
        "due_date": due_date,
        "idempotency_key": idempotency_key,
    }
    parsed = intake.parse_request(_request_data(request, flags))
    settings = get_settings()
    with transaction() as session:
        ticket = intake.file_request(parsed, session=session, settings=settings)
        result = {**ticket_summary(ticket), "request_sha256": ticket.request_sha256}
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"ticket {result['ticket_id']} {result['status']} for {result['model_ref']}")


@app.command("list")
@reports_errors
def list_tickets(
    status: Annotated[str | None, typer.Option(help=f"Only this status: {STATUSES}.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model name.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List tickets, newest first (subjects are not shown; see `grin ticket show`)."""
    from cli.commands._session import transaction
    from infra import queue

    if status is not None and status not in TicketStatus.__members__:
        raise fail(f"unknown status {status!r}; one of: {STATUSES}")
    with transaction() as session:
        tickets = queue.list_tickets(
            session=session,
            status=TicketStatus(status) if status else None,
            model_name=model,
            limit=limit,
        )
        summaries = [ticket_summary(t) for t in tickets]
    if as_json:
        emit_json(summaries)
        return
    columns = [
        "id",
        "status",
        "model",
        "method",
        "attempts",
        "requested by",
        "due",
        "created",
        "reason",
    ]
    rows = [
        (s["ticket_id"], s["status"], s["model_ref"], s["method"], s["attempts"], s["requested_by"],
         s["due_date"], s["created_at"][:19], s["error_reason"])
        for s in summaries
    ]  # fmt: skip
    emit_table("Tickets", columns, rows)


@app.command()
@reports_errors
def show(ticket_id: Annotated[int, typer.Argument(help="Ticket id.")], as_json: JsonFlag = False) -> None:
    """Show one ticket in full, subject included, with its audit history."""
    from cli.commands._session import transaction
    from infra import audit, queue
    from infra.exact_deletion import deletion_kinds

    with transaction() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        detail = {
            **ticket_summary(ticket),
            # approximate (the unlearned version that answered it), then exact (a rebuild covering it)
            "deletion": deletion_kinds(ticket_id, session=session),
            "subject": ticket.subject,
            "model_name": ticket.model_name,
            "forget_uris": ticket.forget_uris,
            "retain_uris": ticket.retain_uris,
            "keywords_uri": ticket.keywords_uri,
            "hparams": ticket.hparams,
            "legal_basis": ticket.legal_basis,
            "idempotency_key": ticket.idempotency_key,
            "request_sha256": ticket.request_sha256,
            "lease_owner": ticket.lease_owner,
            "lease_expires_at": ticket.lease_expires_at.isoformat() if ticket.lease_expires_at else None,
            "flow_run_id": ticket.flow_run_id,
            "history": [
                {
                    "audit_id": r.id,
                    "at": r.created_at.isoformat(),
                    "kind": r.kind,
                    "from": r.payload.get("from"),
                    "to": r.payload.get("to"),
                    "reason": r.payload.get("reason"),
                    "actor": r.payload.get("actor"),
                }
                for r in audit.records(session=session, ticket_id=ticket_id)
            ],
        }
    if as_json:
        emit_json(detail)
        return
    fields = [(key, value) for key, value in detail.items() if key != "history"]
    emit_table(
        f"Ticket {ticket_id}",
        ["field", "value"],
        [(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in fields],
    )
    history = [
        (h["audit_id"], h["at"][:19], h["kind"], h["from"], h["to"], h["reason"], h["actor"]) for h in detail["history"]
    ]
    emit_table("History", ["audit id", "at", "kind", "from", "to", "reason", "actor"], history)


def _emit_report(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    typer.echo(f"{report.label}: {report.outcome}" + (f" — {report.reason}" if report.reason else ""))
    if report.version is not None:
        typer.echo(f"{report.model} version {report.version} (checkpoint sha256 {report.checkpoint_sha256})")
    if report.before or report.after:
        names = sorted(set(report.before) | set(report.after))
        emit_table(
            "Metrics",
            ["metric", "before", "after"],
            [(n, _num(report.before.get(n)), _num(report.after.get(n))) for n in names],
        )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@app.command()
@reports_errors
def process(ticket_id: Annotated[int, typer.Argument(help="Ticket id.")], as_json: JsonFlag = False) -> None:
    """Answer one queued ticket now with the process-ticket flow; exit 1 unless it completes."""
    from cli.commands._session import transaction
    from flows.prefect_env import configure_prefect
    from infra import queue

    with transaction() as session:  # settings, database and ticket first: one line, not a failed flow run
        queue.get_ticket(ticket_id, session=session)
    configure_prefect()
    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)
    _emit_report(report, as_json)
    if report.outcome != "completed":
        raise typer.Exit(1)


@app.command()
@reports_errors
def batch(
    model: Annotated[str, typer.Argument(help="Model name, or '*' for every model with queued tickets.")],
    max_tickets: Annotated[int, typer.Option(min=1, help="Tickets folded into one run.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Answer a model's queued tickets with one unlearning run (the batch-unlearning flow)."""
    from cli.commands._session import transaction
    from flows.prefect_env import configure_prefect
    from infra import registry

    with transaction() as session:  # settings, database and model first: one line, not a failed flow run
        if model != "*":
            registry.get_model(model, session=session)
    configure_prefect()
    from flows.tickets import batch_unlearning

    reports = batch_unlearning(model, max_tickets)
    if as_json:
        emit_json([r.model_dump(mode="json") for r in reports])
    else:
        for report in reports:
            _emit_report(report, as_json=False)
    if any(r.outcome not in ("completed", "nothing_to_do") for r in reports):
        raise typer.Exit(1)


@app.command()
@reports_errors
def requeue(
    ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "requeued by an operator",
    by: Annotated[str | None, typer.Option(help="Who requeues it (default: $USER).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Take back a ticket whose lease has not lapsed yet.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Send a failed, needs_review or stuck ticket back to the queue with fresh attempts (audited)."""
    import os

    from cli.commands._session import transaction
    from infra import queue

    actor = by or os.environ.get("USER") or "operator"
    with transaction() as session:
        ticket = queue.requeue(ticket_id, session=session, actor=actor, reason=reason, force=force)
        summary = ticket_summary(ticket)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"ticket {ticket_id} queued again by {actor}")


@app.command()
@reports_errors
def reclaim(as_json: JsonFlag = False) -> None:
    """Sweep now: tickets whose lease lapsed go back to the queue (or fail for good after max attempts)."""
    from dataclasses import asdict

    from infra.db.session import make_sessionmaker
    from infra.reclaim import sweep
    from infra.settings import get_settings
    from infra.storage import open_store

    settings = get_settings()
    factory = make_sessionmaker(settings.database_url)
    try:
        report = sweep(sessions=factory, store=open_store(settings), max_attempts=settings.max_attempts)
    finally:
        factory.kw["bind"].dispose()
    if as_json:
        emit_json(asdict(report))
    else:
        typer.echo(
            f"requeued {report.requeued or 'none'}, failed for good {report.failed or 'none'}, "
            f"completed {report.completed or 'none'}, {report.scratch_objects} scratch object(s) purged"
        )


@app.command()
@reports_errors
def report(
    ticket_id: Annotated[int, typer.Argument(help="Ticket id.")],
    fmt: Annotated[str, typer.Option("--format", help="md (default), pdf or json.")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout (pdf needs it).")] = None,
) -> None:
    """The deletion report of a ticket, for the requester or the regulator: what was asked, the
    versions changed and serving, the gate's every check, the checkpoint hash and the audit chain
    head. Ids, hashes and numbers only: no forget-set text, the subject by its sha256."""
    from cli.commands._session import transaction
    from infra.deletion_report import build_report, to_markdown, to_pdf
    from infra.errors import InvalidRequestError

    if fmt not in ("md", "pdf", "json"):
        raise InvalidRequestError(f"--format must be md, pdf or json, not {fmt!r}")
    if fmt == "pdf" and out is None:
        raise InvalidRequestError("--format pdf writes a file: give --out PATH")
    with transaction() as session:
        document = build_report(ticket_id, session=session)
    body: bytes = (
        to_pdf(document)
        if fmt == "pdf"
        else (json.dumps(document.model_dump(mode="json"), indent=1) + "\n").encode()
        if fmt == "json"
        else to_markdown(document).encode()
    )
    if out is None:
        sys.stdout.write(body.decode())
        return
    out.write_bytes(body)
    typer.echo(f"wrote {out} ({len(body)} bytes)", err=True)
