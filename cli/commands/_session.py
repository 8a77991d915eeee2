"""A database transaction for one command, on the database the settings name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit on success, roll back on any error, and close the engine either way."""
    from infra.db.session import make_engine, make_sessionmaker
    from infra.settings import get_settings

    engine = make_engine(get_settings().database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    finally:
        engine.dispose()
