"""Assemble a run's data: the forget set from the tickets' objects, a retain sample from the model's
training manifest minus every record that overlaps it, and the eval suite; all content-hashed.

The forget snapshot goes to `scratch/` (purged after the run); the retain sample and eval suite go
to `runs/` and stay, so an auditor can recompute the hashes in the audit record.
"""

from __future__ import annotations

import json

from prefect import task

from grin_core.records import (
    RecordFormatError,
    overlaps,
    parse_keywords,
    parse_qa_records,
    sample_retain,
    text_key,
    to_jsonl,
)
from grin_core.tofu import attach_keywords
from infra import queue
from infra.errors import ChecksumMismatchError, InvalidRequestError, ObjectNotFoundError
from infra.settings import get_settings
from infra.storage import locate
from tasks.contracts import Frozen, ObjectRef, RunPlan, Snapshot
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES

BAD_INPUT = (RecordFormatError, ObjectNotFoundError, ChecksumMismatchError, InvalidRequestError)


class Assembly(Frozen):
    """The snapshot (None when every ticket was bad input) and the tickets rejected, with reasons."""

    snapshot: Snapshot | None
    rejected: dict[int, str]


def _get(uri: str) -> bytes:
    store, key = locate(uri, settings=get_settings())
    return store.get_bytes(key)


def _ticket_inputs(uris: list[str], keywords_uri: str | None, retain_uris: list[str] | None):
    forget = [r for uri in uris for r in parse_qa_records(_get(uri), source=uri)]
    keywords = parse_keywords(_get(keywords_uri), source=keywords_uri) if keywords_uri else []
    retain = [r for uri in retain_uris or [] for r in parse_qa_records(_get(uri), source=uri)]
    return forget, keywords, retain


def _unique(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        key = (text_key(r["question"]), text_key(r["answer"]))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


@task(name="assemble-sets", task_run_name="assemble-{label}", **IO_RETRIES)
def assemble_sets(label: str, run_id: str, plan: RunPlan) -> Assembly:
    settings = get_settings()
    with sessions().begin() as session:
        tickets = [queue.get_ticket(i, session=session) for i in plan.ticket_ids]
        inputs = {t.id: (list(t.forget_uris), t.keywords_uri, t.retain_uris) for t in tickets}
    forget, keywords, retain_given, rejected = [], [], [], {}
    for ticket_id, (uris, keywords_uri, retain_uris) in inputs.items():
        try:
            records, phrases, retain = _ticket_inputs(uris, keywords_uri, retain_uris)
        except BAD_INPUT as exc:
            rejected[ticket_id] = str(exc)
            continue
        forget += records
        keywords += phrases
        retain_given += retain
    if not forget:
        return Assembly(snapshot=None, rejected=rejected)
    forget = attach_keywords(_unique(forget), sorted(set(keywords)))

    if retain_given:
        pool_source = retain_given
    elif plan.parent.training_manifest_uri:
        pool_source = parse_qa_records(_get(plan.parent.training_manifest_uri), source="training manifest")
    else:
        reason = "the model has no training manifest and the ticket names no retain set"
        return Assembly(snapshot=None, rejected={**rejected, **{t: reason for t in inputs if t not in rejected}})
    wanted = settings.retain_sample_size + settings.eval_retain_size
    pool = sample_retain(pool_source, forget, n=wanted, seed=plan.spec.seed, keywords=keywords)
    n_eval = min(settings.eval_retain_size, len(pool) // 4)
    retain_eval, retain = pool[:n_eval], pool[n_eval:]
    if not retain:
        reason = "no retain records are left once everything overlapping the forget set is removed"
        return Assembly(snapshot=None, rejected={**rejected, **{t: reason for t in inputs if t not in rejected}})

    suite = json.loads(_get(plan.parent.eval_suite_uri)) if plan.parent.eval_suite_uri else {}
    forget_keys = {text_key(r[k]) for r in forget for k in ("question", "answer")}
    suite = {part: [r for r in rows if not overlaps(r, forget_keys, keywords)] for part, rows in suite.items()}
    if not suite.get("retain"):
        suite["retain"] = retain_eval

    store = object_store()
    stored_forget = store.put_bytes(f"scratch/{run_id}/forget.jsonl", to_jsonl(forget))
    stored_retain = store.put_bytes(f"runs/{run_id}/retain.jsonl", to_jsonl(retain))
    stored_suite = store.put_bytes(f"runs/{run_id}/eval_suite.json",
                                   json.dumps(suite, sort_keys=True, ensure_ascii=False).encode())
    snapshot = Snapshot(
        forget=ObjectRef(uri=stored_forget.uri, sha256=stored_forget.sha256),
        retain=ObjectRef(uri=stored_retain.uri, sha256=stored_retain.sha256),
        eval_suite=ObjectRef(uri=stored_suite.uri, sha256=stored_suite.sha256),
        forget_count=len(forget),
        retain_count=len(retain),
        keyword_count=len(set(keywords)),
        eval_counts={part: len(rows) for part, rows in suite.items()},
    )
    return Assembly(snapshot=snapshot, rejected=rejected)
