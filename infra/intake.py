"""Intake: check a deletion request against the registry, the policy and the object stores, then queue it.

Everything is checked before anything is written, so a bad request leaves no row behind:
- every object URI must resolve under an intake root (`infra.intake_roots`), and the ticket
  files the resolved URI, so the pipeline later reads exactly what was checked;
- each object is sized (`head`) before it is read and must fit `intake_max_object_bytes`;
- its content is parsed and checked (`infra.intake_content`) and then dropped: intake keeps
  no copy and logs nothing of it; the pipeline that erases it is the next to read it;
- per-ticket overrides stay inside the model's gate policy (the retry ladder's caps are the
  outer bounds a ticket may ask for) and `max_sigma2`; a due date in the past is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from infra import filing, registry
from infra.db.models import Ticket
from infra.errors import InvalidRequestError, one_line
from infra.intake_content import check_keywords_object, check_qa_object
from infra.intake_roots import Located, locate_allowed
from infra.settings import Settings
from infra.ticket_request import TicketRequest
from policy.round_setting import LADDER_CAPS, cap


def parse_request(data: Mapping[str, Any]) -> TicketRequest:
    """A TicketRequest from loose data (JSON, CLI flags), with a one-line error when it is not one."""
    try:
        return TicketRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {one_line(exc)}") from None


def _check_overrides(request: TicketRequest, *, session: Session, settings: Settings) -> None:
    policy = registry.gate_policy(request.model_name, session=session, defaults=settings.gate)
    hparams = request.hparams
    limits = [
        (name, getattr(hparams, name), cap(policy, name), f"the gate policy's {policy_field}")
        for name, policy_field in LADDER_CAPS.items()
    ]
    limits.append(("sigma2", hparams.sigma2, settings.max_sigma2, "GRIN_MAX_SIGMA2"))
    for name, value, limit, source in limits:
        if value is not None and value > limit:
            raise InvalidRequestError(f"invalid request: hparams.{name}={value:g} exceeds {limit:g} ({source})")


def _check_due_date(request: TicketRequest) -> None:
    today = datetime.now(UTC).date()
    if request.due_date is not None and request.due_date < today:
        raise InvalidRequestError(
            f"invalid request: due_date {request.due_date.isoformat()} is in the past "
            f"(today is {today.isoformat()} UTC)"
        )


def _read_checked(located: Located, source: str, check: Callable[..., int], settings: Settings) -> None:
    info = located.store.head(located.key)
    if info.size > settings.intake_max_object_bytes:
        raise InvalidRequestError(
            f"{source}: {info.size} bytes, more than the {settings.intake_max_object_bytes} allowed"
        )
    data = located.store.get_bytes(located.key)
    if len(data) > settings.intake_max_object_bytes:  # it grew between head and get
        raise InvalidRequestError(f"{source}: more than the {settings.intake_max_object_bytes} bytes allowed")
    check(data, source=source, max_records=settings.intake_max_records)


def check_request(request: TicketRequest, *, session: Session, settings: Settings) -> TicketRequest:
    """Raise if anything about the request is wrong; return it with its URIs resolved."""
    registry.check_method_fits(registry.resolve(request.model, session=session), request.method)
    _check_due_date(request)
    _check_overrides(request, session=session, settings=settings)
    # Every URI is resolved against the roots before any object is looked at.
    forget = [locate_allowed(u, settings=settings) for u in request.forget_uris]
    retain = [locate_allowed(u, settings=settings) for u in request.retain_uris or []]
    keywords = locate_allowed(request.keywords_uri, settings=settings) if request.keywords_uri else None
    for i, located in enumerate(forget):
        _read_checked(located, f"forget_uris[{i}]", check_qa_object, settings)
    for i, located in enumerate(retain):
        _read_checked(located, f"retain_uris[{i}]", check_qa_object, settings)
    if keywords is not None:
        _read_checked(keywords, "keywords_uri", check_keywords_object, settings)
    return request.model_copy(
        update={
            "forget_uris": [located.uri for located in forget],
            "retain_uris": [located.uri for located in retain] if request.retain_uris else None,
            "keywords_uri": keywords.uri if keywords else None,
        }
    )


def file_request(request: TicketRequest, *, session: Session, settings: Settings, actor: str | None = None) -> Ticket:
    """Check the request, then file it (idempotently, when it carries a key)."""
    checked = check_request(request, session=session, settings=settings)
    return filing.file_ticket(checked, session=session, actor=actor)
