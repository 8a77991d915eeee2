"""Whose fault an error is: the request's (the ticket is rejected, never retried) or the infrastructure's.

A request's fault cannot go away by trying again: input that is not what it must be, a model or an
object that is not there, bytes or a checkpoint that fail their recorded hashes. Everything else
(a database or storage outage, a worker that died, a bug) is the infrastructure's: the ticket fails
and is retried while it has attempts left. A pydantic ValidationError is deliberately not listed:
intake validates requests, so one raised in a run is a bug, and a bug must not reject a request.
"""

from __future__ import annotations

from grin_core.data.records import RecordFormatError
from grin_core.models.checkpoint import CheckpointIntegrityError
from infra.errors import (
    ChecksumMismatchError,
    InvalidRequestError,
    ObjectNotFoundError,
    UnknownModelError,
)

REQUEST_FAULTS: tuple[type[BaseException], ...] = (
    InvalidRequestError,
    ObjectNotFoundError,
    UnknownModelError,
    ChecksumMismatchError,
    CheckpointIntegrityError,
    RecordFormatError,
)


def request_fault(exc: BaseException) -> str | None:
    """A one-line reason when `exc` is the request's fault, else None."""
    if not isinstance(exc, REQUEST_FAULTS):
        return None
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]
