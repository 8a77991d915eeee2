"""GRUN behind the same tickets, gate and registry: two `grun` tickets on one line, the ML stages in a
`grin worker` process (PostgreSQL, moto S3, Prefect API). The base weights stay those of version 1;
the second ticket adds a module and keeps the first ticket's data forgotten.

Figures are printed (`-s`): counts and metrics only, never record text.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from transformers import AutoModelForCausalLM

from grin_core.evaluation.evaluate import EvalSuite, evaluate
from grin_core.models.checkpoint import checkpoint_sha256, load_checkpoint
from grin_core.unlearning.grun import INTERVENTIONS, THREAT_MODEL, read_grun_config
from infra import audit, queue
from infra.db.models import ModelVersion
from infra.errors import InvalidRequestError
from infra.ticket_status import TicketStatus
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef
from tasks.inputs import load_model
from tasks.resources import sessions
from tests.fixtures.pipeline import file_ticket

pytestmark = pytest.mark.slow
ROUGE_TOLERANCE = 0.10  # as in test_sequential_tickets.py


def _version(settings, ticket_id: int) -> ModelVersion:
    with sessions(settings).begin() as session:
        ticket = queue.get_ticket(ticket_id, session=session)
        assert ticket.status == TicketStatus.completed, ticket.error_reason
        version = session.get(ModelVersion, ticket.result_version_id)
        session.expunge(version)
        return version


def _forget_rouge(model, tokenizer, suite: list[dict]) -> float:
    return round(evaluate(model, tokenizer, EvalSuite(forget=suite), progress=False)["forget_rougeL"], 4)


def test_two_grun_tickets_stand_on_the_unchanged_base_and_the_first_stays_forgotten(
    prefect_api,
    make_settings,
    fresh_pg_url,
    s3_storage_fields,
    use_settings,
    published_model,
    forget_objects,
    gpu_worker,
    memorised_model,
):
    settings = make_settings(
        database_url=fresh_pg_url, gpu_dispatch="worker", superseded_purge_days=0, **s3_storage_fields
    )
    env = use_settings(settings, PREFECT_API_URL=prefect_api, GRIN_SUPERSEDED_PURGE_DAYS="0")
    model = published_model(
        settings,
        gate_policy={  # as test_sequential_tickets: a second author costs more
            "retain_rougeL_min_ratio": 0.8,
            "retain_rougeL_min_origin_ratio": 0.7,
            "forget_holdout_prob_ratio_max": 100.0,
        },
    )
    worker = gpu_worker(env)
    second = [{"question": r["question"], "answer": r["answer"]} for r in memorised_model.retain if r["author_id"] == 3]

    from flows.tickets import process_ticket

    t1 = file_ticket(settings, model, *forget_objects(settings, model.forget, model.keywords), method="grun")
    r1 = process_ticket(t1)
    assert r1.outcome == "completed" and r1.version == 2, (r1.reason, r1.rounds)
    assert set(r1.workers) == {"unlearn", "evaluate"} and set(r1.workers.values()) == {worker.pid}
    v2 = _version(settings, t1)
    t2 = file_ticket(settings, model, *forget_objects(settings, second), method="grun")
    r2 = process_ticket(t2)
    assert r2.outcome == "completed" and r2.version == 3, (r2.reason, r2.rounds)
    v3 = _version(settings, t2)

    with sessions(settings).begin() as session:
        v1 = session.scalars(select(ModelVersion).where(ModelVersion.version == 1)).one()
        v1_ref = CheckpointRef(uri=v1.checkpoint_uri, sha256=v1.checkpoint_sha256)
        records = {
            t: [r for r in audit.records(session=session, ticket_id=t) if r.kind == "unlearning.registered"]
            for t in (t1, t2)
        }
        assert audit.verify(session=session).ok
        assert v1.purged_at is None  # superseded, but both GRUN versions need its weights
    # the base checkpoint of both versions is version 1's, and a plain load of it is the base
    assert (v2.base_checkpoint_sha256, v3.base_checkpoint_sha256) == (v1_ref.sha256, v1_ref.sha256)
    v1_dir = fetch_checkpoint(v1_ref, settings)
    assert checkpoint_sha256(v1_dir) == v1_ref.sha256
    assert not any(name.startswith("grun") for name in AutoModelForCausalLM.from_pretrained(v1_dir).state_dict())
    # version 3's checkpoint holds both requests' modules, naming the base, and no weights of its own
    v3_ref = CheckpointRef(uri=v3.checkpoint_uri, sha256=v3.checkpoint_sha256)
    v3_dir = fetch_checkpoint(v3_ref, settings)
    config = read_grun_config(v3_dir)
    assert len(config["requests"]) == 2 and config["base"]["sha256"] == v1_ref.sha256
    assert not (v3_dir / "model.safetensors").exists()
    assert THREAT_MODEL in (v3_dir / "README.md").read_text()
    for ticket_id, version in ((t1, v2), (t2, v3)):
        [record] = records[ticket_id]
        payload = record.payload
        assert payload["base_weights_changed"] is False and payload["threat_model"] == THREAT_MODEL
        assert payload["base_checkpoint_sha256"] == v1_ref.sha256
        manifest = json.loads(
            (
                fetch_checkpoint(CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256), settings)
                / "manifest.json"
            ).read_text()
        )
        assert payload["intervention_sha256"] == manifest["files"][INTERVENTIONS]
        assert payload["checkpoint_sha256"] == version.checkpoint_sha256 and payload["mask"] is None
        assert payload["hparams"]["method"] == "grun"
        assert not {"p_percent", "sigma2"} & set(payload["hparams"])  # no weight selection, no noise
        assert all(r["p_percent"] is None for r in payload["rounds"])
        assert "p_percent" not in version.hparams

    # a GRIN ticket on a GRUN version would tune the base under the intervention and drop it: refused at filing
    with pytest.raises(InvalidRequestError, match="is a GRUN intervention over base checkpoint"):
        file_ticket(settings, model, *forget_objects(settings, second))

    # ticket 1's forgetting survives ticket 2 (a test in this process, on what the registry serves)
    suite = memorised_model.suite.forget
    base_model, tokenizer = load_checkpoint(v1_dir)
    rouge = {"v1": _forget_rouge(base_model, tokenizer, suite)}
    for name, version in (("v2", v2), ("v3", v3)):
        served, tokenizer = load_model(CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256))
        rouge[name] = _forget_rouge(served, tokenizer, suite)
    assert rouge["v1"] > 0.8 and rouge["v2"] <= 0.4, rouge
    assert rouge["v3"] <= min(rouge["v2"] + ROUGE_TOLERANCE, 0.4), rouge
    print(
        json.dumps(
            {
                "ticket_1_forget_rougeL_by_version": rouge,
                "rounds": [len(r1.rounds), len(r2.rounds)],
                "after": {"ticket_1": r1.after, "ticket_2": r2.after},
            },
            indent=1,
        )
    )
