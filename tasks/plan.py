"""Plan a run: the tickets it answers, the version it starts from, its policy and hyper-parameters."""

from __future__ import annotations

from prefect import task

from infra import queue, registry
from infra.db.models import Ticket
from infra.settings import get_settings
from policy.round_setting import RoundSetting
from tasks.contracts import CheckpointRef, Deletion, ParentVersion, RunPlan
from tasks.resources import sessions
from tasks.retry import IO_RETRIES


def _settings_of(ticket: Ticket) -> tuple:
    return ticket.model_name, ticket.method, sorted(ticket.hparams.items())


@task(name="plan-run", task_run_name="plan-{label}", **IO_RETRIES)
def plan_run(label: str, ticket_ids: list[int], owner: str) -> RunPlan:
    """One run answers tickets that ask for the same model, method and overrides; others go back.

    A single ticket unlearns from the version it names (`name@alias`, `name@N`); a batch from the
    model's production version.
    """
    settings = get_settings()
    with sessions().begin() as session:
        tickets = [queue.get_ticket(i, session=session) for i in ticket_ids]
        first = tickets[0]
        kept = [t for t in tickets if _settings_of(t) == _settings_of(first)]
        released = {}
        for ticket in tickets:
            if ticket not in kept:
                released[ticket.id] = f"asks for other settings than ticket {first.id}; answered by a run of its own"
                queue.release(ticket.id, owner, session=session, reason=released[ticket.id])
        ref = first.model_ref if len(tickets) == 1 else first.model_name
        version = registry.resolve(ref, session=session)
        registry.check_method_fits(version, first.method)  # the alias may have moved since filing
        policy = registry.gate_policy(first.model_name, session=session, defaults=settings.gate)
        return RunPlan(
            ticket_ids=[t.id for t in kept],
            parent=ParentVersion(
                model_name=first.model_name,
                version_id=version.id,
                version=version.version,
                checkpoint=CheckpointRef(uri=version.checkpoint_uri, sha256=version.checkpoint_sha256),
                training_manifest_uri=version.training_manifest_uri,
                eval_suite_uri=version.eval_suite_uri,
                training_manifest_sha256=version.training_manifest_sha256,
                lineage_deletions=[Deletion(**d) for d in version.lineage_deletions or []],
                origin_version=registry.origin(version).version if version.parent_id else None,
                origin_metrics=registry.origin_metrics(version) if version.parent_id else None,
            ),
            setting=RoundSetting.for_method(first.method, **first.hparams),
            policy=policy.model_dump(),
            released=released,
            parent_ref=ref,
        )
