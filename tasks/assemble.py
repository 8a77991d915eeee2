"""Assemble a run's data: the forget set from the tickets' objects, the lineage manifest, a retain
sample from it minus every record that overlaps the forget set, and the eval suite; all content-hashed.

The lineage manifest is the parent version's training manifest minus every forget record
(normalised question/answer, `grin_core.data.records.without_forget`): the version this run registers
stands on it, so no later ticket samples a deleted record into its retain set. It goes to
`manifests/<sha256>.jsonl`. The forget snapshot goes to `scratch/` (purged after the run); the
retain sample goes to `runs/` and the eval suite (the parent's minus every overlap) to
`suites/<sha256>.json`, so an auditor can recompute the hashes in the audit record; a retain sample
that holds a later ticket's forget text is purged when that ticket ends.
"""

from __future__ import annotations

import hashlib
import json

from prefect import task

from grin_core.data.records import (
    RecordFormatError,
    forget_keys,
    overlaps,
    parse_keywords,
    parse_qa_records,
    sample_retain,
    text_key,
    to_jsonl,
    without_forget,
)
from grin_core.data.tofu import attach_keywords
from infra import queue
from infra.errors import ChecksumMismatchError, InvalidRequestError, ObjectNotFoundError
from infra.intake_roots import locate_allowed
from infra.settings import get_settings
from infra.storage import locate
from tasks.contracts import Deletion, Frozen, ObjectRef, RunPlan, Snapshot
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES

BAD_INPUT = (RecordFormatError, ObjectNotFoundError, ChecksumMismatchError, InvalidRequestError)


class Assembly(Frozen):
    """The snapshot (None when every ticket was bad input) and the tickets rejected, with reasons."""

    snapshot: Snapshot | None
    rejected: dict[int, str]


def _get(uri: str, sha256: str | None = None) -> bytes:
    store, key = locate(uri, settings=get_settings())
    return store.get_bytes(key, expected_sha256=sha256)


def _ticket_object(uri: str) -> bytes:
    """A ticket's own object, resolved against the intake roots again (a symlink may have moved
    since filing, the roots may have narrowed) and within the size cap; else InvalidRequestError."""
    settings = get_settings()
    located = locate_allowed(uri, settings=settings)
    if located.store.head(located.key).size > settings.intake_max_object_bytes:
        raise InvalidRequestError(f"{uri}: more than the {settings.intake_max_object_bytes} bytes allowed")
    return located.store.get_bytes(located.key)


def _ticket_inputs(uris: list[str], keywords_uri: str | None, retain_uris: list[str] | None):
    forget = [r for uri in uris for r in parse_qa_records(_ticket_object(uri), source=uri)]
    keywords = parse_keywords(_ticket_object(keywords_uri), source=keywords_uri) if keywords_uri else []
    retain = [r for uri in retain_uris or [] for r in parse_qa_records(_ticket_object(uri), source=uri)]
    return forget, keywords, retain


def _unique(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        key = (text_key(r["question"]), text_key(r["answer"]))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _gather(inputs: dict[int, tuple]) -> tuple[list, list, list, dict[int, str], list[Deletion], dict[int, list[str]]]:
    """Every ticket's forget records, key phrases and given retain records, read and checked; the tickets
    whose input is bad are rejected with the reason. (forget, keywords, retain, rejected, deletions, keys)"""
    forget, keywords, retain_given, rejected, deletions, keys = [], [], [], {}, [], {}
    for ticket_id, (uris, keywords_uri, retain_uris) in inputs.items():
        try:
            records, phrases, retain = _ticket_inputs(uris, keywords_uri, retain_uris)
        except BAD_INPUT as exc:
            rejected[ticket_id] = str(exc)
            continue
        forget += records
        deletions.append(Deletion(ticket_id=ticket_id, forget_sha256=hashlib.sha256(to_jsonl(records)).hexdigest()))
        keys[ticket_id] = sorted(forget_keys(records))
        keywords += phrases
        retain_given += retain
    return forget, keywords, retain_given, rejected, deletions, keys


def _store(
    run_id: str,
    ticket_ids: list[int],
    forget: list[dict],
    retain: list[dict],
    suite: dict,
    manifest: list[dict] | None,
    keyword_count: int,
    deletions: list[Deletion],
    lineage_deletions: list[Deletion],
    keys: dict[int, list[str]],
) -> Snapshot:
    """Write the run's data (forget to scratch, retain under runs/, suite and manifest content-addressed)."""
    store = object_store()
    stored_manifest = None
    if manifest is not None:
        body = to_jsonl(manifest)
        stored_manifest = store.put_bytes(f"manifests/{hashlib.sha256(body).hexdigest()}.jsonl", body)
    # Names the run's tickets first, so a crashed run's scratch copy is found by ticket and purged.
    store.put_bytes(f"scratch/{run_id}/tickets.json", json.dumps(ticket_ids).encode())
    stored_forget = store.put_bytes(f"scratch/{run_id}/forget.jsonl", to_jsonl(forget))
    stored_retain = store.put_bytes(f"runs/{run_id}/retain.jsonl", to_jsonl(retain))
    suite_body = json.dumps(suite, sort_keys=True, ensure_ascii=False).encode()
    # Content-addressed: the registered version measures its successors on it (no overlap with
    # this forget set), and per-run objects under `runs/` may be purged later.
    stored_suite = store.put_bytes(f"suites/{hashlib.sha256(suite_body).hexdigest()}.json", suite_body)
    return Snapshot(
        forget=ObjectRef(uri=stored_forget.uri, sha256=stored_forget.sha256),
        retain=ObjectRef(uri=stored_retain.uri, sha256=stored_retain.sha256),
        eval_suite=ObjectRef(uri=stored_suite.uri, sha256=stored_suite.sha256),
        forget_count=len(forget),
        retain_count=len(retain),
        keyword_count=keyword_count,
        eval_counts={part: len(rows) for part, rows in suite.items()},
        manifest=ObjectRef(uri=stored_manifest.uri, sha256=stored_manifest.sha256) if stored_manifest else None,
        manifest_count=len(manifest) if manifest is not None else None,
        deletions=deletions,
        lineage_deletions=lineage_deletions,
        forget_keys=keys,
    )


@task(name="assemble-sets", task_run_name="assemble-{label}", **IO_RETRIES)
def assemble_sets(label: str, run_id: str, plan: RunPlan) -> Assembly:
    settings = get_settings()
    with sessions().begin() as session:
        tickets = [queue.get_ticket(i, session=session) for i in plan.ticket_ids]
        inputs = {t.id: (list(t.forget_uris), t.keywords_uri, t.retain_uris) for t in tickets}
    forget, keywords, retain_given, rejected, deletions, keys = _gather(inputs)
    if not forget:
        return Assembly(snapshot=None, rejected=rejected)
    forget = attach_keywords(_unique(forget), sorted(set(keywords)))

    manifest = None
    if plan.parent.training_manifest_uri:
        manifest = without_forget(
            parse_qa_records(
                _get(plan.parent.training_manifest_uri, plan.parent.training_manifest_sha256),
                source="training manifest",
            ),
            forget,
        )
    if retain_given:
        pool_source = retain_given
    elif manifest is not None:
        pool_source = manifest
    else:
        reason = "the model has no training manifest and the ticket names no retain set"
        return Assembly(snapshot=None, rejected={**rejected, **{t: reason for t in inputs if t not in rejected}})
    suite = json.loads(_get(plan.parent.eval_suite_uri)) if plan.parent.eval_suite_uri else {}
    forget_keys = {text_key(r[k]) for r in forget for k in ("question", "answer")}
    suite = {part: [r for r in rows if not overlaps(r, forget_keys, keywords)] for part, rows in suite.items()}
    # Hold retain records out for the gate only when the line's suite has no retain part of its own:
    # every record held out is one the privacy schedule's repair phase cannot use.
    eval_size = 0 if suite.get("retain") else settings.eval_retain_size
    pool = sample_retain(
        pool_source, forget, n=settings.retain_sample_size + eval_size, seed=plan.setting.seed, keywords=keywords
    )
    n_eval = min(eval_size, len(pool) // 4)
    retain_eval, retain = pool[:n_eval], pool[n_eval:]
    if not retain:
        reason = "no retain records are left once everything overlapping the forget set is removed"
        return Assembly(snapshot=None, rejected={**rejected, **{t: reason for t in inputs if t not in rejected}})
    if not suite.get("retain"):
        suite["retain"] = retain_eval

    snapshot = _store(
        run_id,
        sorted(inputs),
        forget,
        retain,
        suite,
        manifest,
        len(set(keywords)),
        deletions,
        [*plan.parent.lineage_deletions, *deletions],
        keys,
    )
    return Assembly(snapshot=snapshot, rejected=rejected)
