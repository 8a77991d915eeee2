"""The whole flow on the production shape: PostgreSQL, moto S3 over HTTP, a Prefect API, and the
ML stages in a separate `grin worker` process. One run; each test reads one aspect of it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import time
import uuid

import boto3
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from infra import audit, queue, registry
from infra.db.models import AuditRecord, ModelVersion
from infra.db.provision import create_database, drop_database
from infra.intake import file_request
from infra.settings import Settings, get_settings
from infra.storage import locate, open_store
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from policy.gate_policy import PROBE_NAMES
from tasks.resources import sessions
from tests.fixtures.pipeline import VENV_BIN, publish_model
from tests.fixtures.services import S3_KEY_ID, S3_SECRET, settings_env

pytestmark = pytest.mark.slow


class _Capture(logging.Handler):
    """Every log record the flow process emits, formatted, for the leak test."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def completed_run(prefect_api, pg_admin_url, pg_template, s3_endpoint, memorised_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    database_url = create_database(pg_admin_url, f"{pg_template[: -len('_template')]}_e2e", template=pg_template)
    bucket = f"grin-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    ).create_bucket(Bucket=bucket)
    settings = Settings(
        env="test",
        state_dir=tmp / "state",
        database_url=database_url,
        gpu_dispatch="worker",
        storage_url=f"s3://{bucket}/grin",
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id=S3_KEY_ID,
        s3_secret_access_key=S3_SECRET,
    )
    capture = _Capture()
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("GRIN_")]:
            patch.delenv(name)
        env = {**settings_env(settings), "PREFECT_API_URL": prefect_api}
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        model = publish_model(settings, memorised_model, {"probes": list(PROBE_NAMES)})  # the default probes
        store = open_store(settings)
        forget = store.put_bytes("inbox/request-1/forget.json", json.dumps(model.forget).encode())
        keywords = store.put_bytes("inbox/request-1/keywords.json", json.dumps(model.keywords).encode())
        worker_log = tmp / "worker.log"
        worker = subprocess.Popen(
            [str(VENV_BIN / "grin"), "worker"],
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **env,
                "GRIN_STATE_DIR": str(tmp / "worker-state"),
                "PREFECT_RESULTS_LOCAL_STORAGE_PATH": os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"],
            },
        )
        try:
            request = TicketRequest(
                subject="author 199",
                model=f"{model.name}@production",
                forget_uris=[forget.uri],
                keywords_uri=keywords.uri,
                requested_by="dpo@example.org",
                legal_basis="GDPR Art. 17",
                hparams={"max_epochs": 15},
            )  # the default method, half its budget
            with sessions(settings).begin() as session:
                ticket_id = file_request(request, session=session, settings=settings).id
            from prefect.logging.handlers import APILogHandler

            from flows.tickets import process_ticket

            logging.getLogger("prefect").addHandler(capture)
            try:
                state = process_ticket(ticket_id, return_state=True)
            finally:
                logging.getLogger("prefect").removeHandler(capture)
            report = state.result()
            APILogHandler().flush()
            time.sleep(3)  # the worker's log batches reach the API every ~2 s
            yield {
                "settings": settings,
                "env": env,
                "model": model,
                "ticket_id": ticket_id,
                "report": report,
                "flow_run_id": state.state_details.flow_run_id,
                "worker_pid": worker.pid,
                "worker_log": worker_log,
                "flow_log": "\n".join(capture.lines),
            }
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            get_settings.cache_clear()
    drop_database(pg_admin_url, make_url(database_url).database)


def test_ticket_completes_with_a_registered_version_whose_checkpoint_matches_s3(completed_run):
    run, settings = completed_run, completed_run["settings"]
    report = run["report"]
    assert report.outcome == "completed", report.reason
    assert [r.passed for r in report.rounds][-1], report.rounds
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(run["ticket_id"], session=session)
        assert ticket.status == TicketStatus.completed
        version = session.get(ModelVersion, ticket.result_version_id)
        assert version.version == 2 and version.parent.version == 1
        assert [t.id for t in version.tickets] == [run["ticket_id"]]
        assert registry.resolve(f"{run['model'].name}@production", session=session).id == version.id
        checkpoint_uri, checkpoint_sha = version.checkpoint_uri, version.checkpoint_sha256
    assert checkpoint_uri.startswith("s3://") and checkpoint_sha in checkpoint_uri
    store, prefix = locate(checkpoint_uri, settings=settings)
    manifest = store.get_bytes(f"{prefix}/manifest.json")
    assert hashlib.sha256(manifest).hexdigest() == checkpoint_sha
    weights = store.get_bytes(f"{prefix}/model.safetensors")
    assert hashlib.sha256(weights).hexdigest() == json.loads(manifest)["files"]["model.safetensors"]


def test_forget_metrics_pass_the_gate(completed_run):
    report = completed_run["report"]
    assert report.gate.passed
    assert report.after["forget_rougeL"] <= 0.5 * report.before["forget_rougeL"]
    assert report.after["forget_rougeL"] <= 0.4
    assert report.after["retain_rougeL"] >= 0.9 * report.before["retain_rougeL"]


def test_ml_stages_ran_in_the_worker_process_and_the_audit_record_says_so(completed_run):
    run, settings = completed_run, completed_run["settings"]
    report = run["report"]
    assert set(report.workers) == {"score", "unlearn", "evaluate"}
    assert set(report.workers.values()) == {run["worker_pid"]} != {os.getpid()}
    with sessions(settings).begin() as session:
        record = session.scalars(select(AuditRecord).where(AuditRecord.kind == "unlearning.registered")).one()
        assert record.ticket_id == run["ticket_id"]
        assert {w["pid"] for w in record.payload["workers"].values()} == {run["worker_pid"]}
        assert record.payload["flow_run_id"] == str(run["flow_run_id"])


def test_grin_audit_verify_passes(completed_run):
    result = subprocess.run(
        [str(VENV_BIN / "grin"), "audit", "verify", "--json"],
        check=False,
        env={**os.environ, **completed_run["env"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["ok"] is True and verdict["records"] > 10
    with sessions(completed_run["settings"]).begin() as session:
        kinds = [r.kind for r in audit.records(session=session, ticket_id=completed_run["ticket_id"])]
    assert kinds[0] == "ticket.filed" and "unlearning.registered" in kinds


def _artifacts_and_logs(flow_run_id) -> tuple[list[tuple[str, str]], list[str]]:
    """(type, everything shown) of each artifact of the flow run, and its log messages."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async def read():
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            return (
                [(a.type, json.dumps([a.key, a.description, a.data], default=str)) for a in artifacts],
                [log.message for log in logs],
            )

    return asyncio.run(read())


def test_forget_text_is_absent_from_every_artifact_log_line_and_output(completed_run, prefect_results):
    artifacts, logs = _artifacts_and_logs(completed_run["flow_run_id"])
    assert {"table", "markdown", "progress"} <= {kind for kind, _ in artifacts}
    assert len(logs) >= 5
    results = "\n".join(p.read_text(errors="replace") for p in prefect_results.rglob("*") if p.is_file())
    texts = {
        "artifacts": "\n".join(text for _, text in artifacts),
        "API logs": "\n".join(logs),
        "persisted results": results,
        "worker output": completed_run["worker_log"].read_text(errors="replace"),
        "flow process logs": completed_run["flow_log"],
    }
    secrets = [r["answer"] for r in completed_run["model"].forget]
    for where, text in texts.items():
        assert text, f"nothing captured from the {where}"
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{len(leaked)} forget answers appear in the {where}"


def test_the_deletion_report_in_md_and_pdf_names_the_ticket_versions_and_gate_and_no_forget_text(
    completed_run, tmp_path
):
    import pypdfium2

    run = completed_run
    env, ticket_id = {**os.environ, **run["env"]}, run["ticket_id"]
    grin = [str(VENV_BIN / "grin"), "ticket", "report", str(ticket_id)]
    md = subprocess.run(grin, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert md.returncode == 0, md.stderr
    pdf_path = tmp_path / "report.pdf"
    pdf = subprocess.run(
        [*grin, "--format", "pdf", "--out", str(pdf_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pdf.returncode == 0, pdf.stderr
    document = pypdfium2.PdfDocument(str(pdf_path))
    first = document[0].render(scale=1.5).to_pil()  # the PDF opens and its first page renders
    assert first.size[0] > 500 and first.getextrema() != ((255, 255), (255, 255), (255, 255))
    first.save(tmp_path / "report-page-1.png")
    pdf_text = "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    report = run["report"]
    for text in (md.stdout, pdf_text):
        assert f"ticket {ticket_id}" in text and "Evaluation gate: passed" in text
        assert report.checkpoint_sha256 in text.replace("\r", "").replace("\n", "")
        assert "New version" in text and str(report.version) in text
        forget = [s for r in run["model"].forget for s in (r["question"], r["answer"])]
        assert not [s for s in forget if s in text or s[:40] in text]
    assert "production -> v2" in md.stdout and "GDPR Art. 17" in md.stdout
