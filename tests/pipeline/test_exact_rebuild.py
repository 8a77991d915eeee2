"""Exact deletion on the pipeline (PostgreSQL, moto S3, Prefect API, ML stages in-process): two tickets
answered by GRIN (one batch run), then a rebuild of the line from its lineage manifest; a ticket filed
while it trains is answered on top of it and waits for the next rebuild.

Figures are printed (`-s`): counts, seconds and metrics only, never record text.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from grin_core.data.records import forget_keys, overlaps, parse_qa_records, to_jsonl
from infra import audit, exact_deletion, queue, registry
from infra.deletion_report import build_report, to_markdown
from infra.storage import locate
from infra.ticket_status import TicketStatus
from tasks.exact_manifest import verify_exact
from tasks.rebuild import scratch_prefix
from tasks.resources import object_store, sessions
from tests.fixtures.models import MEMORISED_MODEL_CONFIG, MEMORISED_TRAIN_CONFIG
from tests.fixtures.pipeline import LENIENT_GATE, file_ticket

pytestmark = pytest.mark.slow
ROUND = {"max_epochs": 8, "learning_rate": 0.0015, "retain_batch_size": 8}  # the bookkeeping is checked, not GRIN


def _records(settings, uri: str) -> list[dict]:
    store, key = locate(uri, settings=settings)
    return parse_qa_records(store.get_bytes(key))


def test_a_rebuild_deletes_the_answered_tickets_exactly_and_the_next_ticket_waits_for_the_next_one(
    inline_settings, published_model, forget_objects, memorised_model
):
    settings = inline_settings
    model = published_model(settings, gate_policy=LENIENT_GATE)
    with sessions(settings).begin() as session:  # what the train-model flow records on a line's first version
        registry.resolve(model.name, session=session).hparams = {
            "trained_from_scratch": True,
            "architecture": MEMORISED_MODEL_CONFIG.to_dict(),
            "recipe": MEMORISED_TRAIN_CONFIG.to_dict(),
        }
    authors = {
        a: [{"question": r["question"], "answer": r["answer"]} for r in memorised_model.retain if r["author_id"] == a]
        for a in (2, 3)
    }
    first, second, third = model.forget, authors[2], authors[3]

    from flows.rebuild_line import rebuild_line
    from flows.tickets import batch_unlearning, process_ticket

    t1 = file_ticket(settings, model, forget_objects(settings, first)[0], hparams=ROUND)
    t2 = file_ticket(settings, model, forget_objects(settings, second)[0], hparams=ROUND)
    [answered] = batch_unlearning(model.name)
    assert answered.outcome == "completed" and answered.version == 2, answered.reason
    with ThreadPoolExecutor(1) as pool:
        rebuilding = pool.submit(rebuild_line, model.name)
        # the rebuild has planned (the serving version's manifest, as of its start) once its scratch copy of
        # the deleted records exists; a ticket filed now is answered after it and waits for the next one
        deadline = time.monotonic() + 300
        while not object_store().list(scratch_prefix(model.name)):
            assert not rebuilding.done() and time.monotonic() < deadline, "the rebuild never planned"
            time.sleep(0.1)
        t3 = file_ticket(settings, model, forget_objects(settings, third)[0], hparams=ROUND)
        filed_during = not rebuilding.done()
        [rebuilt] = rebuilding.result()
    assert filed_during
    assert rebuilt["outcome"] == "completed" and rebuilt["version"] == 3, rebuilt
    assert rebuilt["covers"] == [t1, t2] and rebuilt["gate"]["passed"]
    with sessions(settings).begin() as session:
        exact = registry.resolve(model.name, session=session)
        assert (exact.version, exact_deletion.is_exact(exact), exact.hparams["trained_from"]) == (3, True, "scratch")
        assert exact.training_manifest_sha256 == rebuilt["manifest_sha256"] == exact.hparams["manifest_sha256"]
        assert [v.superseded_at is not None for v in exact.model.versions] == [True, True, False]
        manifest_uri = exact.training_manifest_uri
        reports = {t: build_report(t, session=session) for t in (t1, t2)}
    assert all([d["kind"] for d in r.deletion] == ["approximate", "exact"] for r in reports.values())
    assert all(r.deletion[-1]["version"] == 3 and "exact in v3" in to_markdown(r) for r in reports.values())
    manifest = _records(settings, manifest_uri)
    origin = memorised_model.retain + memorised_model.forget + memorised_model.general
    assert len(manifest) == len(origin) - len(first) - len(second)
    assert not any(overlaps(r, forget_keys(first) | forget_keys(second), ()) for r in manifest)
    # the privacy rows of a model that never saw the records, measured on them (rebuilt from the origin
    # manifest into scratch, which is empty again)
    assert "mia_auc" in rebuilt["metrics"] and "retain_rougeL" in rebuilt["metrics"]
    assert object_store().list(scratch_prefix(model.name)) == []

    with sessions(settings).begin() as session:
        found = verify_exact(f"{model.name}@3", session=session)
    assert found.ok and found.base_version == 1 and found.covered == [t1, t2], found.problems
    from cli.app import app

    assert CliRunner().invoke(app, ["audit", "verify-exact", f"{model.name}@3"]).exit_code == 0

    # the ticket filed during the rebuild is answered on top of it and waits for the next one
    answered3 = process_ticket(t3)
    assert answered3.outcome == "completed" and answered3.parent_version == 3, answered3.reason
    with sessions(settings).begin() as session:
        serving = registry.resolve(model.name, session=session)
        pending = exact_deletion.pending(serving)
        report3 = build_report(t3, session=session)
        assert queue.get_ticket(t3, session=session).status == TicketStatus.completed
    assert (answered3.version, serving.version, pending) == (
        4,
        4,
        [t3],
    )  # the rebuild learned author 3; GRIN unlearned it
    assert [d["kind"] for d in report3.deletion] == ["approximate"] and "next rebuild" in to_markdown(report3)

    # an altered stored manifest (one deleted record put back) is caught, naming what differs
    store, key = locate(manifest_uri, settings=settings)
    store.put_bytes(key, to_jsonl([*manifest, first[0]]))
    with sessions(settings).begin() as session:
        altered = verify_exact(f"{model.name}@3", session=session)
        assert audit.verify(session=session).ok
    assert not altered.ok
    assert any("stored manifest" in p and "differs" in p for p in altered.problems), altered.problems
    assert any(f"holds 1 records of covered ticket {t1}" in p for p in altered.problems), altered.problems
    result = CliRunner().invoke(app, ["audit", "verify-exact", f"{model.name}@3"])
    assert result.exit_code == 1 and "NOT verified" in result.stderr
    print(
        json.dumps(
            {
                "rebuild": {k: rebuilt[k] for k in ("train_s", "epochs", "eval_s", "rebuild_s", "manifest_count")},
                "grin_batch_s": answered.timings_s,
                "ticket_3": {"version": answered3.version, "pending": pending},
            },
            indent=1,
        )
    )
