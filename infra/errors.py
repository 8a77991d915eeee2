"""Errors the service raises on purpose.

Everything a caller can fix (bad input, unknown names, lost leases) derives from `GrinError`,
so the CLI and the flows can tell it apart from a bug and report one line instead of a traceback.
"""

from __future__ import annotations

from pydantic import ValidationError


class GrinError(Exception):
    """Base of every error that carries a message meant for the person who caused it."""


class InvalidRequestError(GrinError, ValueError):
    """A deletion request or an argument that cannot be accepted as given."""


class UnsupportedURIError(InvalidRequestError):
    """A URI whose scheme no configured store can open."""


class ObjectNotFoundError(GrinError, LookupError):
    """A URI that names no object."""


class UnknownModelError(GrinError, LookupError):
    """A model name, alias or version that the registry does not hold."""


class TicketNotFoundError(GrinError, LookupError):
    """A ticket id that names no ticket."""


class IllegalTransitionError(GrinError):
    """A status change that the ticket state machine does not allow."""


class LeaseLostError(GrinError):
    """The caller no longer holds the ticket's lease (it expired and was reclaimed, or never held it)."""


class ParentMovedError(GrinError):
    """A run lost the race: the version its tickets name moved on while it trained (another run registered
    one), so its candidate would drop that run's deletions. Its tickets go back to be answered on the new one."""


class IdempotencyConflictError(InvalidRequestError):
    """An idempotency key reused with a different request."""


class ChecksumMismatchError(GrinError):
    """Bytes read back whose sha256 is not the one recorded for them."""


def one_line(exc: ValidationError) -> str:
    """A pydantic validation error as one line: `field: message; field: message`."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)
