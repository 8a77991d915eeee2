"""The `rebuild-line` deployment's choice of lines: due under their schedule, trained here from scratch (a
rebuild trains the line's recipe from scratch: not a line fine-tuned from a base), with tickets waiting.
SQLite; no training."""

from __future__ import annotations

import json

import pytest

from infra import filing, registry
from infra.errors import InvalidRequestError
from infra.registration import AliasRule, register_version
from infra.registry import NewVersion
from infra.ticket_request import TicketRequest
from tasks.resources import sessions


def _line(session, name: str, hparams: dict, answered: int) -> None:
    registry.register_model(name, session=session)
    registry.add_version(
        name,
        session=session,
        checkpoint_uri=f"s3://c/{name}/1",
        checkpoint_sha256=name[0] * 64,
        training_manifest_uri=f"s3://m/{name}",
        hparams=hparams,
    )
    registry.set_alias(name, registry.PRODUCTION, 1, session=session)
    for n in range(answered):
        ticket = filing.file_ticket(
            TicketRequest(
                subject="S",
                model=name,
                forget_uris=["s3://intake/f.json"],
                requested_by="dpo@example.org",
                legal_basis="GDPR Art. 17",
            ),
            session=session,
        )
        new = NewVersion(
            checkpoint_uri=f"s3://c/{name}/{n + 2}",
            checkpoint_sha256=f"{n}".rjust(64, name[0]),
            parent=registry.resolve(name, session=session),
            ticket_ids=[ticket.id],
            deletions=[{"ticket_id": ticket.id, "forget_sha256": "f" * 64}],
        )
        register_version(name, new, session=session, rule=AliasRule.if_on_parent)


def test_lines_due_are_those_trained_here_with_enough_tickets_waiting(make_settings, sqlite_url, use_settings):
    settings = make_settings(database_url=sqlite_url, rebuild={"*": {"after_deletions": 2}, "quiet": {}})
    use_settings(settings, GRIN_REBUILD=json.dumps({"*": {"after_deletions": 2}, "quiet": {}}))
    trained = {"trained_from_scratch": True, "recipe": {"max_epochs": 1}, "architecture": {}}
    with sessions(settings).begin() as session:
        _line(session, "due", trained, answered=2)
        _line(session, "early", trained, answered=1)  # one ticket waits, the schedule asks for two
        _line(session, "imported", {}, answered=3)  # no recipe: not trained here
        fine_tuned = {**trained, "fine_tuned_from": {"model": "imported", "version": 1}}
        _line(session, "fine-tuned", fine_tuned, answered=3)  # rebuilding from a base does not exist yet
        _line(session, "quiet", trained, answered=3)  # its own schedule sets nothing: rebuilt by hand only

    from tasks.rebuild import lines_due, plan_rebuild

    due = lines_due.fn()
    assert list(due) == ["due"] and "2 tickets wait" in due["due"]
    with pytest.raises(InvalidRequestError, match="fine-tuned from imported@1; a rebuild trains the line's recipe"):
        plan_rebuild.fn("fine-tuned")
