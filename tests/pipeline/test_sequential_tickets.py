"""A deletion stays deleted: tickets answered one after the other on one line (PostgreSQL, moto S3,
Prefect API, ML stages in-process), and a ticket on data the model never learned.

Figures are printed (`-s`): counts and metrics only, never record text.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from grin_core.data.records import forget_keys, overlaps, parse_qa_records, sample_retain
from grin_core.data.tofu import load_split
from grin_core.evaluation.evaluate import EvalSuite, evaluate
from grin_core.models.checkpoint import load_checkpoint
from infra import audit, queue, registry
from infra.db.models import AuditRecord, ModelVersion
from infra.errors import InvalidRequestError
from infra.intake import file_request
from infra.storage import locate, open_store
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef
from tasks.resources import sessions
from tests.fixtures.models import MEMORISED_SUBSET
from tests.fixtures.pipeline import MECHANICS_HPARAMS, MECHANICS_METHOD

pytestmark = pytest.mark.slow
# ticket 1's forgetting must survive ticket 2: its forget ROUGE-L and answer probability on
# version 3 may exceed version 2's by at most these (absolute), and stay within the gate's bound.
ROUGE_TOLERANCE, PROB_TOLERANCE = 0.10, 0.05


@pytest.fixture
def pipeline_settings(prefect_api, make_settings, fresh_pg_url, s3_storage_fields, use_settings, tmp_path, monkeypatch):
    settings = make_settings(
        database_url=fresh_pg_url, gpu_dispatch="inline", superseded_purge_days=0, **s3_storage_fields
    )
    use_settings(settings, GRIN_SUPERSEDED_PURGE_DAYS="0")
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))  # the stages' temporary directories
    return settings


def _file(settings, model_name: str, forget_uri: str, keywords_uri: str | None = None, **hparams) -> int:
    request = TicketRequest(
        subject="a data subject",
        model=f"{model_name}@production",
        forget_uris=[forget_uri],
        keywords_uri=keywords_uri,
        requested_by="dpo@example.org",
        legal_basis="GDPR Art. 17",
        method=MECHANICS_METHOD,
        hparams={**MECHANICS_HPARAMS, **hparams},
    )
    with sessions(settings).begin() as session:
        return file_request(request, session=session, settings=settings).id


def _objects_holding(settings, records: list[dict]) -> list[str]:
    """Keys of every object in the store whose bytes contain a question or an answer of `records`."""
    store = open_store(settings)
    needles = {s for r in records for k in ("question", "answer") for s in (r[k], json.dumps(r[k])[1:-1])}
    holding = []
    for key in store.list(""):
        text = store.get_bytes(key).decode("utf-8", errors="ignore")
        if any(n in text for n in needles):
            holding.append(key)
    return holding


def _forget_metrics(checkpoint_dir: Path, forget_suite: list[dict]) -> dict[str, float]:
    model, tokenizer = load_checkpoint(checkpoint_dir)
    metrics = evaluate(model, tokenizer, EvalSuite(forget=forget_suite), progress=False)
    return {k: round(metrics[k], 4) for k in ("forget_rougeL", "forget_prob", "forget_keyword_acc")}


def _version(settings, ticket_id: int) -> tuple[int, str, str, str]:
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert ticket.status == TicketStatus.completed, ticket.error_reason
        v = session.get(ModelVersion, ticket.result_version_id)
        return v.version, v.checkpoint_uri, v.checkpoint_sha256, v.training_manifest_uri


def _audit(settings, ticket_id: int, kind: str) -> dict:
    with sessions(settings).begin() as session:
        [record] = [r for r in audit.records(session=session, ticket_id=ticket_id) if r.kind == kind]
        return record.payload


def test_two_tickets_in_a_row_the_second_neither_relearns_nor_keeps_the_first(
    pipeline_settings, published_model, forget_objects, memorised_model, tmp_path
):
    settings = pipeline_settings
    # What this test checks is the lineage and the purge, not the gate's strength (tests/infra and
    # the end-to-end test do): a second author unlearned from an already unlearned tiny model costs
    # more retain ROUGE-L than the default 0.9x / 0.8x admit, so this line's bounds are looser.
    model = published_model(
        settings,
        gate_policy={
            "retain_rougeL_min_ratio": 0.8,
            "retain_rougeL_min_origin_ratio": 0.7,
            "forget_holdout_prob_ratio_max": 100.0,
        },
    )
    first = model.forget  # author 199
    second = [{"question": r["question"], "answer": r["answer"]} for r in memorised_model.retain if r["author_id"] == 3]
    first_keys, second_keys = forget_keys(first), forget_keys(second)
    first_suite = memorised_model.suite.forget  # author 199's records with paraphrases and keywords
    origin_manifest = memorised_model.retain + memorised_model.forget + memorised_model.general

    from flows.tickets import process_ticket

    # The mechanics line's short budget (tests/fixtures/pipeline.py): what is checked is the lineage and the
    # purge, not how far it gets.
    t1 = _file(settings, model.name, *forget_objects(settings, first, model.keywords))
    r1 = process_ticket(t1)
    assert r1.outcome == "completed" and r1.version == 2, [
        (r.p_percent, r.epochs, r.learning_rate, r.reason) for r in r1.rounds
    ]
    _, v2_uri, v2_sha, _ = _version(settings, t1)
    after_first = {"t1": len(_objects_holding(settings, first))}
    v2_dir = fetch_checkpoint(CheckpointRef(uri=v2_uri, sha256=v2_sha), settings)  # v2 is purged later

    t2 = _file(settings, model.name, *forget_objects(settings, second))
    r2 = process_ticket(t2)
    assert r2.outcome == "completed" and r2.version == 3, [
        (r.p_percent, r.epochs, r.learning_rate, r.reason) for r in r2.rounds
    ]
    _, v3_uri, v3_sha, v3_manifest = _version(settings, t2)

    # the second run's retain snapshot holds none of the first ticket's records (nor its own)
    payload = _audit(settings, t2, "unlearning.registered")
    store, key = locate(payload["retain_snapshot"]["uri"], settings=settings)
    retain2 = parse_qa_records(store.get_bytes(key, expected_sha256=payload["retain_snapshot"]["sha256"]))
    in_retain_after = sum(overlaps(r, first_keys, ()) for r in retain2)
    assert in_retain_after == 0 and not any(overlaps(r, second_keys, ()) for r in retain2)
    # what the same sampling drew before: the parent's manifest inherited unchanged from version 1
    in_retain_before = sum(
        overlaps(r, first_keys, ())
        for r in sample_retain(
            origin_manifest, second, n=settings.retain_sample_size + settings.eval_retain_size, seed=0
        )
    )

    # version 3 stands on the origin's manifest minus both forget sets; its lineage names both tickets
    store, key = locate(v3_manifest, settings=settings)
    manifest3 = parse_qa_records(store.get_bytes(key))
    assert len(manifest3) == len(origin_manifest) - len(first) - len(second)
    assert not any(overlaps(r, first_keys | second_keys, ()) for r in manifest3)
    assert [d["ticket_id"] for d in payload["lineage_deletions"]] == [t1, t2]
    v3_dir = fetch_checkpoint(CheckpointRef(uri=v3_uri, sha256=v3_sha), settings)
    card = (v3_dir / "README.md").read_text()
    assert all(d["forget_sha256"] in card for d in payload["lineage_deletions"])
    # the gate of ticket 2 compared with the origin's numbers as measured in ticket 1's run
    assert payload["origin_metrics"] == r1.before
    [origin_check] = [c for c in r2.gate.checks if c.name == "retain_rougeL_origin"]
    assert r2.gate.passed and origin_check.limit == pytest.approx(0.7 * r1.before["retain_rougeL"])

    # ticket 1's forgetting survives ticket 2
    metrics = {
        v: _forget_metrics(d, first_suite) for v, d in ((1, memorised_model.checkpoint_dir), (2, v2_dir), (3, v3_dir))
    }
    assert metrics[3]["forget_rougeL"] <= min(metrics[2]["forget_rougeL"] + ROUGE_TOLERANCE, 0.4)
    assert metrics[3]["forget_prob"] <= metrics[2]["forget_prob"] + PROB_TOLERANCE

    # older versions hold deleted data; with no grace period their checkpoints and data are gone
    with sessions(settings).begin() as session:
        rows = {v.version: v for v in session.scalars(select(ModelVersion))}
        assert (rows[1].holds_deleted_data_of, rows[2].holds_deleted_data_of, rows[3].holds_deleted_data_of) == (
            [t1, t2],
            [t2],
            [],
        )
        assert rows[1].purged_at is not None and rows[2].purged_at is not None and rows[3].purged_at is None
        assert registry.resolve(f"{model.name}@production", session=session).version == 3
    with pytest.raises(InvalidRequestError, match="purged"), sessions(settings).begin() as session:
        registry.set_alias(model.name, "production", 2, session=session, override_reason="test")

    # no copy of either forget set is left anywhere in the store, nor a stage's temporary directory
    holding = {"t1": _objects_holding(settings, first), "t2": _objects_holding(settings, second)}
    assert holding == {"t1": [], "t2": []}, holding
    assert open_store(settings).list("inbox/") == []
    with sessions(settings).begin() as session:
        purges = [
            r.payload
            for r in session.scalars(select(AuditRecord).where(AuditRecord.kind == "ticket.forget_copies_purged"))
        ]
    assert [(p["ticket_ids"], p["inbox"]) for p in purges] == [([t1], "deleted"), ([t2], "deleted")]
    assert list(Path(tempfile.gettempdir()).glob("grin-unlearn-*")) == []
    with sessions(settings).begin() as session:
        assert audit.verify(session=session).ok
    print(
        json.dumps(
            {
                "earlier_ticket_records_in_later_retain": {"before": in_retain_before, "after": in_retain_after},
                "objects_holding_forget_text": {
                    "after_ticket_1": after_first,
                    "after_ticket_2": {k: len(v) for k, v in holding.items()},
                },
                "ticket_1_forget_metrics_by_version": metrics,
                "tolerance": {"forget_rougeL": ROUGE_TOLERANCE, "forget_prob": PROB_TOLERANCE},
            },
            indent=1,
        )
    )


def test_a_ticket_on_data_the_model_never_learned_completes_without_a_new_version(
    pipeline_settings, published_model, forget_objects, memorised_model
):
    settings = pipeline_settings
    model = published_model(settings)
    holdout = load_split(MEMORISED_SUBSET.holdout_split, settings.tofu_dir)
    # the line's eval suite holds the first 20 holdout records (non-members); the forget set is 20
    # other never-seen records
    never = [{"question": r["question"], "answer": r["answer"]} for r in holdout[20:40]]
    ticket_id = _file(settings, model.name, forget_objects(settings, never)[0])

    from flows.tickets import process_ticket

    report = process_ticket(ticket_id)

    assert report.outcome == "completed" and report.version is None, report.reason
    assert report.reason.startswith("nothing to forget: ") and "MIA AUC" in report.reason
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert ticket.status == TicketStatus.completed and ticket.result_version_id is None
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1
        kinds = [r.kind for r in audit.records(session=session, ticket_id=ticket_id)]
        assert "unlearning.nothing_to_forget" in kinds and "unlearning.registered" not in kinds
        record = session.scalars(select(AuditRecord).where(AuditRecord.kind == "unlearning.nothing_to_forget")).one()
        assert record.payload["decision"]["reason"] == report.reason and record.payload["version"] == 1
        assert audit.verify(session=session).ok
    assert _objects_holding(settings, never) == []
    print(
        json.dumps(
            {
                "nothing_to_forget": report.reason,
                "parent_metrics": {
                    k: round(v, 4) for k, v in report.before.items() if k.startswith(("forget", "mia_auc", "holdout"))
                },
            }
        )
    )
