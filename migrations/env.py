"""Alembic environment bound to grin's metadata.

The URL comes from the caller's Alembic config (`sqlalchemy.url`, as `grin db upgrade` and the
test fixtures set it) and otherwise from the service settings, so `alembic upgrade head` at the
repository root migrates the same database the service uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from infra.db import models  # noqa: F401  (registers every table on the metadata)
from infra.db.base import Base
from infra.db.session import ensure_sqlite_directory
from infra.settings import get_settings

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A plain engine: SQLite batch rebuilds need foreign keys off, which the service engine turns on.
    url = database_url()
    ensure_sqlite_directory(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
