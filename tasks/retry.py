"""Retries for I/O only: a database or object-store hiccup is retried, an ML error never is."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DBAPIError, OperationalError

from infra.errors import GrinError

TRANSIENT = (OperationalError, BotoCoreError, ConnectionError, TimeoutError)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, GrinError):  # our own verdicts (bad input, illegal transition) are final
        return False
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        return code in {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "503"}
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError)
    return isinstance(exc, TRANSIENT)


def retry_on_io(task, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: retry only transient database and storage errors."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classify whatever the task raised
        return _is_transient(exc)
    return False


IO_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": retry_on_io,
}
