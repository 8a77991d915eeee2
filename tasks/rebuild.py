"""Exact deletion's stages around the training stage: plan a rebuild (the lineage manifest as of its
start), gate the rebuilt model, register it as a version of method `exact`, and clean its scratch copy.

The rebuild trains from scratch with the line's recipe (the one its first version was trained with);
rebuilding a line fine-tuned from a base model does not exist yet. The deleted records are rebuilt from
the origin manifest (by the hashes the tickets' audit records hold) into `scratch/` for the privacy rows
only, and purged when the rebuild ends, or when the next one starts after a killed run.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from prefect import task

from grin_core.data.records import overlaps, parse_qa_records, to_jsonl
from infra import exact_deletion, registry
from infra.errors import InvalidRequestError
from infra.settings import get_settings
from infra.storage import locate
from policy.gate import GateDecision, rebuild_decision
from policy.gate_policy import GatePolicy
from policy.rebuild_policy import rebuild_due
from tasks.contracts import CheckpointRef, Frozen, ObjectRef
from tasks.exact_manifest import deleted_keys, origin_manifest
from tasks.resources import object_store, sessions
from tasks.retry import IO_RETRIES

REBUILD_FROM_BASE_MISSING = (
    "a rebuild trains the line's recipe from scratch; rebuilding from a base model does not exist yet"
)


class RebuildPlan(Frozen):
    """What one rebuild trains on and covers, fixed at its start: tickets answered later wait for the next."""

    model_name: str
    parent_version_id: int  # the serving version whose lineage manifest is trained on
    parent_version: int
    manifest: ObjectRef  # canonical JSON Lines, content-addressed under manifests/
    manifest_count: int
    covers: list[int]
    architecture: dict[str, Any]
    recipe: dict[str, Any]
    eval_suite: ObjectRef | None
    origin_metrics: dict[str, float] | None
    policy: dict[str, Any]
    deleted: ObjectRef | None = None  # the covered tickets' records, rebuilt into scratch/ for the privacy rows


def scratch_prefix(model_name: str) -> str:
    return f"scratch/rebuild-{model_name}/"


def _get(uri: str, sha256: str | None) -> tuple[bytes, str]:
    store, key = locate(uri, settings=get_settings())
    data = store.get_bytes(key, expected_sha256=sha256)
    return data, hashlib.sha256(data).hexdigest()


def not_rebuildable(first: dict[str, Any]) -> str | None:
    """Why a line whose first version recorded `first` (its hparams) cannot be rebuilt from scratch, or None."""
    if "recipe" not in first:
        return "its first version records no training recipe (registered or imported, not trained here)"
    base = first.get("fine_tuned_from")
    if base:
        return f"its first version was fine-tuned from {base['model']}@{base['version']}"
    return None


@task(name="plan-rebuild", task_run_name="plan-rebuild-{name}", **IO_RETRIES)
def plan_rebuild(name: str, recipe: dict[str, Any] | None = None) -> RebuildPlan:
    """The serving version's lineage manifest, the tickets it has not yet covered exactly and the line's
    recipe (`recipe` overrides fields of it); InvalidRequestError when the line cannot be rebuilt."""
    store = object_store()
    for key in store.list(scratch_prefix(name)):  # a killed rebuild's copy of deleted records
        store.delete(key)
    settings = get_settings()
    with sessions().begin() as session:
        serving = registry.resolve(name, session=session)
        first = registry.origin(serving)
        trained = first.hparams or {}
        why = not_rebuildable(trained)
        if why:
            raise InvalidRequestError(f"{name}: {why}; {REBUILD_FROM_BASE_MISSING}")
        if not serving.training_manifest_uri:
            raise InvalidRequestError(f"{name}@{serving.version} has no training manifest to rebuild from")
        covers = exact_deletion.pending(serving)
        keys = deleted_keys(covers, session=session)
        policy = registry.gate_policy(name, session=session, defaults=settings.gate).model_dump()
        origin_metrics = registry.origin_metrics(serving)
        source = (serving.training_manifest_uri, serving.training_manifest_sha256)
        suite_uri = serving.eval_suite_uri
        base = origin_manifest(first, session=session)
        plan = {
            "model_name": name,
            "parent_version_id": serving.id,
            "parent_version": serving.version,
            "covers": covers,
            "architecture": dict(trained.get("architecture") or {}),
            "recipe": {**trained["recipe"], **(recipe or {})},
            "origin_metrics": origin_metrics,
            "policy": policy,
        }
    data, _ = _get(*source)
    records = parse_qa_records(data, source="lineage manifest")
    body = to_jsonl(records)
    stored = store.put_bytes(f"manifests/{hashlib.sha256(body).hexdigest()}.jsonl", body)
    suite = None
    if suite_uri:
        _, suite_sha = _get(suite_uri, None)
        suite = ObjectRef(uri=suite_uri, sha256=suite_sha)
    deleted = None
    all_keys = {k for ks in keys.values() for k in ks}
    if base is not None and all_keys:
        rows = [r for r in parse_qa_records(_get(*base)[0], source="origin manifest") if overlaps(r, all_keys, ())]
        if rows:
            put = store.put_bytes(f"{scratch_prefix(name)}deleted.jsonl", to_jsonl(rows))
            deleted = ObjectRef(uri=put.uri, sha256=put.sha256)
    return RebuildPlan(
        manifest=ObjectRef(uri=stored.uri, sha256=stored.sha256),
        manifest_count=len(records),
        eval_suite=suite,
        deleted=deleted,
        **plan,
    )


@task(name="gate-rebuild", task_run_name="gate-rebuild-{label}")
def gate_rebuild(label: str, plan: RebuildPlan, metrics: dict[str, float]) -> GateDecision:
    return rebuild_decision(GatePolicy(**plan.policy), plan.origin_metrics, metrics)


@task(name="register-exact", task_run_name="register-exact-{label}", **IO_RETRIES)
def register_exact(
    label: str,
    plan: RebuildPlan,
    checkpoint: CheckpointRef,
    metrics: dict[str, float],
    decision: GateDecision,
    summary: dict[str, Any],
) -> int:
    """The rebuilt checkpoint as the line's next version (method `exact`); returns its number."""
    with sessions().begin() as session:
        version = exact_deletion.register_exact(
            plan.model_name,
            plan.parent_version_id,
            checkpoint_uri=checkpoint.uri,
            checkpoint_sha256=checkpoint.sha256,
            manifest_uri=plan.manifest.uri,
            manifest_sha256=plan.manifest.sha256,
            covers=plan.covers,
            session=session,
            alias=get_settings().promote_alias or None,
            hparams={
                "trained_from": "scratch",
                "architecture": plan.architecture,
                "recipe": plan.recipe,
                "manifest_count": plan.manifest_count,
                "rebuilt_from_version": plan.parent_version,
                **summary,
            },
            metrics={"after": metrics, **({"origin": plan.origin_metrics} if plan.origin_metrics else {})},
            gate=decision.model_dump(mode="json"),
        )
        return version.version


@task(name="purge-rebuild-scratch", task_run_name="purge-rebuild-scratch-{name}", **IO_RETRIES)
def purge_rebuild_scratch(name: str) -> int:
    """Delete the rebuild's scratch copy of the deleted records; returns the objects deleted."""
    store = object_store()
    keys = store.list(scratch_prefix(name))
    for key in keys:
        store.delete(key)
    return len(keys)


@task(name="lines-due-for-rebuild", task_run_name="lines-due-for-rebuild")
def lines_due() -> dict[str, str]:
    """Line -> why it is due for a rebuild now, under each line's schedule in settings (`rebuild`); lines
    whose first version was not trained here from scratch are skipped (REBUILD_FROM_BASE_MISSING)."""
    settings = get_settings()
    now = datetime.now(UTC)
    due = {}
    with sessions().begin() as session:
        for model in registry.list_models(session=session):
            policy = settings.rebuild_policy(model.name)
            if policy is None or not model.versions:
                continue
            serving = registry.resolve(model.name, session=session)
            if not_rebuildable(registry.origin(serving).hparams or {}):
                continue  # not trained here from scratch: cannot be rebuilt until rebuilding from a base exists
            since = (exact_deletion.last_exact(serving) or registry.origin(serving)).created_at
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            reason = rebuild_due(policy, len(exact_deletion.pending(serving)), since, now)
            if reason:
                due[model.name] = reason
    return due
