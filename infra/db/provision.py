"""Create and drop whole PostgreSQL databases (throwaway ones for tests and benchmarks).

Names are checked and quoted by the dialect, since CREATE/DROP DATABASE take no bind parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@contextmanager
def _admin_connection(admin_url: str) -> Iterator[Connection]:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def create_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` (optionally as a copy of `template`) and return its URL."""
    for candidate in filter(None, [name, template]):
        if not _NAME.match(candidate):
            raise ValueError(f"database name {candidate!r} must match {_NAME.pattern}")
    with _admin_connection(admin_url) as connection:
        quote = connection.dialect.identifier_preparer.quote
        statement = f"CREATE DATABASE {quote(name)}"
        if template:
            statement += f" TEMPLATE {quote(template)}"
        connection.exec_driver_sql(statement)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting anyone still in it."""
    if not _NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_NAME.pattern}")
    with _admin_connection(admin_url) as connection:
        quote = connection.dialect.identifier_preparer.quote
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")
