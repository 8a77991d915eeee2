"""The audit trail staff read in the Prefect UI: metrics before/after, links to checkpoint and audit.

Only numbers, hashes, counts and ids go into artifacts; never forget-set text.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from infra.deletion_report import build_report, to_markdown
from policy.metric_names import HEADLINE_METRICS
from tasks.contracts import ObjectRef
from tasks.resources import sessions


def metrics_rows(before: dict[str, float], after: dict[str, float]) -> list[dict[str, object]]:
    names = [m for m in HEADLINE_METRICS if m in before or m in after]  # first; the rest alphabetically
    names += sorted((set(before) | set(after)) - set(names))
    rows = []
    for name in names:
        b, a = before.get(name), after.get(name)
        rows.append(
            {
                "metric": name,
                "before": _fmt(b),
                "after": _fmt(a),
                "change": _fmt(a - b) if a is not None and b is not None else "—",
            }
        )
    return rows


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}" if value < 0 else f"{value:.4f}"


@task(name="publish-metrics", task_run_name="metrics-{label}")
def publish_metrics(label: str, before: dict[str, float], after: dict[str, float], version: int | None) -> None:
    where = f"registered as version {version}" if version is not None else "not registered"
    create_table_artifact(
        key=f"{label}-metrics",
        table=metrics_rows(before, after),
        description=f"{label}: metrics of the parent (before) and the candidate (after); {where}",
    )


@task(name="publish-links", task_run_name="links-{label}")
def publish_links(
    label: str,
    model_name: str,
    version: int,
    checkpoint_uri: str,
    checkpoint_sha256: str,
    audit_records: dict[int, ObjectRef],
    chain_head: str,
) -> None:
    create_link_artifact(
        key=f"{label}-checkpoint",
        link=checkpoint_uri,
        link_text=f"{model_name} v{version} checkpoint (sha256 {checkpoint_sha256[:16]}…)",
        description=f"{label}: the registered checkpoint (manifest sha256 {checkpoint_sha256})",
    )
    for record_id, ref in sorted(audit_records.items()):
        create_link_artifact(
            key=f"{label}-audit",
            link=ref.uri,
            link_text=f"audit record {record_id}",
            description=f"{label}: audit record {record_id} (object sha256 {ref.sha256})",
        )
    create_markdown_artifact(
        key=f"{label}-summary",
        markdown="\n".join(
            [
                f"# {label}: answered by {model_name} version {version}",
                "",
                f"- checkpoint: `{checkpoint_uri}`",
                f"- checkpoint sha256: `{checkpoint_sha256}`",
                *[f"- audit record {rid}: `{ref.uri}`" for rid, ref in sorted(audit_records.items())],
                f"- audit chain head after registration: `{chain_head}`",
                "",
                "Verify offline with `grin audit verify`.",
            ]
        ),
        description=f"{label}: registration summary",
    )


@task(name="publish-deletion-report", task_run_name="report-{label}")
def publish_deletion_reports(label: str, ticket_ids: list[int]) -> None:
    """Each ticket's deletion report (`grin ticket report`) as a markdown artifact of the run. The
    tickets are already completed: a failure here is logged, and the CLI can still issue the report."""
    try:
        with sessions().begin() as session:
            reports = {t: to_markdown(build_report(t, session=session)) for t in ticket_ids}
    except Exception as exc:  # noqa: BLE001 - the run's outcome stands
        get_run_logger().warning("%s: no deletion report artifact: %s", label, f"{type(exc).__name__}: {exc}"[:300])
        return
    for ticket_id, markdown in reports.items():
        create_markdown_artifact(
            key=f"deletion-report-{ticket_id}",
            markdown=markdown,
            description=f"{label}: deletion report of ticket {ticket_id}",
        )
