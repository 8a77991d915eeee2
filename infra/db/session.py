"""Engines and session factories for a database URL.

SQLite is the embedded default. It gets foreign keys, a busy timeout and `BEGIN IMMEDIATE`
on every transaction: one writer at a time, decided when the transaction starts, so that a
claim's read-then-update cannot interleave with another process's. PostgreSQL relies on row
locks (`FOR UPDATE SKIP LOCKED`) and an advisory lock for the audit chain instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30.0


def ensure_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite file URL, so a fresh state dir needs no set-up step."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; a SQLite file's directory is created on first use."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    ensure_sqlite_directory(url)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN IMMEDIATE below is the real start.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(url_or_engine: str | Engine) -> sessionmaker[Session]:
    """A session factory; use `with factory.begin() as session:` so each unit of work commits or rolls back whole."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    return sessionmaker(engine, expire_on_commit=False)
