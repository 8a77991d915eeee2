"""The deletion report of one ticket: what was asked, what the service did, and the evidence, as a
document to send back to the data subject or the regulator (`grin ticket report`).

Built from the database alone (the ticket, its version, the aliases and the audit chain), so it can
be issued long after the run. It holds ids, dates, hashes and numbers: never forget-set text, and
the subject only by its sha256 (the audit records' convention: the report may travel further than
the person it is about). Markdown and JSON are rendered here; PDF with fpdf2 (pure Python, kept up).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from infra import audit, queue
from infra.db.models import AuditRecord, ModelAlias, ModelVersion, RegisteredModel, Ticket
from infra.exact_deletion import deletion_kinds
from infra.ticket_status import TicketStatus
from policy.metric_names import HEADLINE_METRICS


class ReportCheck(BaseModel):
    name: str
    value: float | None
    limit: float | None
    passed: bool
    detail: str


class DeletionReport(BaseModel):
    """One ticket's deletion report (numbers, ids and hashes only)."""

    ticket_id: int
    status: str
    outcome: str  # "forgotten: new version", "nothing to forget", or the status when not completed
    filed_at: datetime
    finished_at: datetime | None
    requested_by: str
    legal_basis: str
    due_date: str | None
    subject_sha256: str
    request_sha256: str
    method: str
    model: str
    model_ref: str
    parent_version: int | None = None
    version: int | None = None
    checkpoint_sha256: str | None = None
    base_checkpoint_sha256: str | None = None  # GRUN: the unchanged weights its intervention applies to
    threat_model: str | None = None
    serving: dict[str, int]  # alias -> version, now
    versions_holding_deleted_data: list[int] = []
    purged_versions: list[int] = []
    gate_passed: bool | None = None
    gate_reason: str | None = None
    relearn_probe: bool | None = None  # None: the record predates the setting (the probe was opt-in then)
    checks: list[ReportCheck] = []
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    evidence_record_id: int | None = None  # the unlearning.registered / nothing_to_forget record
    chain_head_at_completion: dict[str, Any] | None = None  # the chain's head right after the ticket ended
    chain_head_now: dict[str, Any]
    timeline: list[dict[str, Any]]
    # how the data was deleted, oldest first: {"kind": "approximate" | "exact", "version", "at"}
    deletion: list[dict[str, Any]] = []


def build_report(ticket_id: int, *, session: Session) -> DeletionReport:
    ticket = queue.get_ticket(ticket_id, session=session)
    records = audit.records(session=session, ticket_id=ticket_id)
    evidence = next((r for r in records if r.kind in ("unlearning.registered", "unlearning.nothing_to_forget")), None)
    ended = _ending(records)
    payload = evidence.payload if evidence else {}
    version = session.get(ModelVersion, ticket.result_version_id) if ticket.result_version_id else None
    head_now = audit.head(session=session)
    return DeletionReport(
        **_request_fields(ticket),
        outcome=_outcome(ticket, version),
        finished_at=ended.created_at if ended else None,
        parent_version=payload.get("parent_version") or payload.get("version"),
        version=version.version if version else None,
        checkpoint_sha256=version.checkpoint_sha256 if version else payload.get("checkpoint_sha256"),
        base_checkpoint_sha256=version.base_checkpoint_sha256 if version else None,
        threat_model=payload.get("threat_model"),
        **_line_fields(ticket, session),
        **_gate_fields(payload),
        evidence_record_id=evidence.id if evidence else None,
        chain_head_at_completion={"id": ended.id, "hash": ended.hash} if ended else None,
        chain_head_now={"id": head_now.id, "hash": head_now.hash, "count": head_now.count},
        timeline=[
            {"at": r.created_at.isoformat(), "from": r.payload.get("from"), "to": r.payload.get("to")}
            for r in records
            if r.kind == "ticket.transition"
        ],
        deletion=deletion_kinds(ticket_id, session=session),
    )


def _ending(records: list[AuditRecord]) -> AuditRecord | None:
    """The transition that ended the ticket (completed, rejected or sent to review), if it has ended."""
    ends = (TicketStatus.completed, TicketStatus.rejected, TicketStatus.needs_review)
    return next((r for r in records if r.kind == "ticket.transition" and r.payload.get("to") in ends), None)


def _outcome(ticket: Ticket, version: ModelVersion | None) -> str:
    if ticket.status != TicketStatus.completed:
        return ticket.status.value
    return "forgotten: new version" if version is not None else "nothing to forget"


def _request_fields(ticket: Ticket) -> dict[str, Any]:
    """What was asked, by whom and on what basis, against which model: the subject by its hash only."""
    return {
        "ticket_id": ticket.id,
        "status": ticket.status.value,
        "filed_at": ticket.created_at,
        "requested_by": ticket.requested_by,
        "legal_basis": ticket.legal_basis,
        "due_date": ticket.due_date.isoformat() if ticket.due_date else None,
        "subject_sha256": audit.sha256_hex(ticket.subject),
        "request_sha256": ticket.request_sha256,
        "method": ticket.method.value,
        "model": ticket.model_name,
        "model_ref": ticket.model_ref,
    }


def _line_fields(ticket: Ticket, session: Session) -> dict[str, Any]:
    """The ticket's model line now: the version each alias serves, the versions that still hold the
    ticket's data and the versions purged."""
    aliases = session.scalars(
        select(ModelAlias).join(ModelAlias.model).where(RegisteredModel.name == ticket.model_name)
    )
    line = session.scalars(
        select(ModelVersion).join(ModelVersion.model).where(RegisteredModel.name == ticket.model_name)
    ).all()
    return {
        "serving": {a.alias: a.version.version for a in aliases},
        "versions_holding_deleted_data": sorted(
            v.version for v in line if ticket.id in (v.holds_deleted_data_of or [])
        ),
        "purged_versions": sorted(v.version for v in line if v.purged_at is not None),
    }


def _gate_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The gate's decision and the metrics before and after, from the evidence record's payload."""
    decision = payload.get("gate") or payload.get("decision") or {}
    return {
        "gate_passed": decision.get("passed"),
        "gate_reason": decision.get("reason"),
        "relearn_probe": payload.get("relearn_probe"),
        "checks": [ReportCheck(**{k: c.get(k) for k in ReportCheck.model_fields}) for c in decision.get("checks", [])],
        "before": payload.get("metrics_before") or payload.get("metrics") or {},
        "after": payload.get("metrics_after") or {},
    }


def deletion_summary(report: DeletionReport) -> str:
    """ "approximate in v2 (date); exact in v4 (date)", or what the ticket waits for."""
    done = "; ".join(f"{d['kind']} in v{d['version']} ({d['at'][:10]})" for d in report.deletion)
    if report.deletion and report.deletion[-1]["kind"] == "approximate":
        done += "; exact deletion at the line's next rebuild"
    return done or "–"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def report_sections(report: DeletionReport) -> list[tuple[str, list[tuple[str, str]] | list[list[str]]]]:
    """The report as titled sections of (field, value) rows or tables: what md and pdf both render."""
    r = report
    request = [
        ("Ticket", str(r.ticket_id)),
        ("Status", r.status),
        ("Outcome", r.outcome),
        ("Filed", r.filed_at.isoformat(timespec="seconds")),
        ("Finished", r.finished_at.isoformat(timespec="seconds") if r.finished_at else "–"),
        ("Requested by", r.requested_by),
        ("Legal basis", r.legal_basis),
        ("Due date", r.due_date or "–"),
        ("Subject (sha256)", r.subject_sha256),
        ("Request (sha256)", r.request_sha256),
        ("Deletion", deletion_summary(r)),
    ]
    model = _model_rows(r)
    gate = [["check", "value", "limit", "passed"]] + [
        [c.name, _num(c.value), _num(c.limit), "yes" if c.passed else "NO"] for c in r.checks
    ]
    metrics = [["metric", "before", "after"]] + [
        [m, _num(r.before.get(m)), _num(r.after.get(m))] for m in HEADLINE_METRICS if m in r.before or m in r.after
    ]
    evidence = _evidence_rows(r)
    timeline = [["at", "from", "to"]] + [[t["at"][:19], t["from"] or "", t["to"] or ""] for t in r.timeline]
    verdict = "passed" if r.gate_passed else ("failed" if r.gate_passed is False else "not run")
    gate_title = f"Evaluation gate: {verdict}" + (f" ({r.gate_reason})" if r.gate_passed is False else "")
    return [
        ("Request", request),
        ("Models", model),
        (gate_title, gate),
        ("Metrics (before -> after)", metrics),
        ("Evidence", evidence),
        ("Timeline", timeline),
    ]


def _model_rows(r: DeletionReport) -> list[tuple[str, str]]:
    """The model line's rows: the versions involved, what serves now, what still holds the data, and
    (GRUN) the unchanged base its intervention applies to."""
    model = [
        ("Model", r.model),
        ("Filed against", r.model_ref),
        ("Method", r.method),
        ("Parent version", str(r.parent_version) if r.parent_version is not None else "–"),
        ("New version", str(r.version) if r.version is not None else "none"),
        ("Checkpoint (sha256)", r.checkpoint_sha256 or "–"),
        ("Serving now", ", ".join(f"{a} -> v{v}" for a, v in sorted(r.serving.items())) or "–"),
        ("Versions still holding the deleted data", ", ".join(map(str, r.versions_holding_deleted_data)) or "none"),
        ("Purged versions", ", ".join(map(str, r.purged_versions)) or "none"),
    ]
    if r.base_checkpoint_sha256:
        model += [
            ("Base checkpoint (sha256, unchanged)", r.base_checkpoint_sha256),
            ("Threat model", r.threat_model or ""),
        ]
    probe = {True: "on", False: "OFF: switched off by the line's policy", None: "not recorded"}[r.relearn_probe]
    model.append(("Relearning probe (fine-tune on half the forget set, measure the other half)", probe))
    return model


def _evidence_rows(r: DeletionReport) -> list[tuple[str, str]]:
    """Where the evidence is in the audit chain: its record and the chain's head then and now."""
    return [
        ("Evidence audit record", str(r.evidence_record_id) if r.evidence_record_id else "–"),
        (
            "Chain head when the ticket ended",
            f"#{r.chain_head_at_completion['id']} {r.chain_head_at_completion['hash']}"
            if r.chain_head_at_completion
            else "–",
        ),
        ("Chain head now", f"#{r.chain_head_now['id']} {r.chain_head_now['hash']}"),
    ]


def to_markdown(report: DeletionReport) -> str:
    note = (
        "Ids, hashes and numbers only; the forgotten records' text is not in this report and no longer "
        "in the service's storage."
    )
    lines = [f"# Deletion report: ticket {report.ticket_id}", "", note, ""]
    for title, rows in report_sections(report):
        lines += [f"## {title}", ""]
        if rows and isinstance(rows[0], tuple):
            lines += ["| field | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
        elif rows:
            header, *body = rows
            lines += [
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
                *["| " + " | ".join(row) + " |" for row in body],
            ]
        lines.append("")
    lines.append("Verify: `grin audit verify --expect-head <hash of the chain head above>`.")
    return "\n".join(lines) + "\n"


def to_pdf(report: DeletionReport) -> bytes:
    """The same sections as a PDF (fpdf2's core fonts: Latin-1 text, so hashes and numbers only)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, f"Deletion report: ticket {report.ticket_id}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    pdf.multi_cell(0, 4, "Ids, hashes and numbers only; the forgotten records' text is not in this report.")
    for title, rows in report_sections(report):
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(0, 6, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=7)
        if rows and isinstance(rows[0], tuple):
            rows = [["field", "value"], *[[k, v] for k, v in rows]]
        if rows:
            with pdf.table(text_align="LEFT", line_height=4) as table:
                for row in rows:
                    cells = table.row()
                    for value in row:
                        cells.cell(_latin1(value))
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    return text.replace("–", "-").replace("→", "->").encode("latin-1", errors="replace").decode("latin-1")
