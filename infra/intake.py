"""Intake: check a deletion request against the registry and the object stores, then queue it.

Everything is checked before anything is written, so a bad request leaves no row behind.
Objects are only looked at (`head`), never read: a forget set is personal data and is first
opened by the pipeline that erases it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from infra import queue, registry, storage
from infra.db.models import Ticket
from infra.errors import InvalidRequestError, one_line
from infra.settings import Settings
from infra.ticket_request import TicketRequest


def parse_request(data: Mapping[str, Any]) -> TicketRequest:
    """A TicketRequest from loose data (JSON, CLI flags), with a one-line error when it is not one."""
    try:
        return TicketRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {one_line(exc)}") from None


def check_request(request: TicketRequest, *, session: Session, settings: Settings) -> None:
    """Raise if the model is unknown or any URI is unsupported or names no object."""
    registry.resolve(request.model, session=session)
    uris = [
        *request.forget_uris,
        *(request.retain_uris or []),
        *filter(None, [request.keywords_uri]),
    ]
    located = [
        storage.locate(uri, settings=settings) for uri in uris
    ]  # every scheme before any I/O
    for store, key in located:
        store.head(key)


def file_request(
    request: TicketRequest, *, session: Session, settings: Settings, actor: str | None = None
) -> Ticket:
    """Check the request, then file it (idempotently, when it carries a key)."""
    check_request(request, session=session, settings=settings)
    return queue.file_ticket(request, session=session, actor=actor)
