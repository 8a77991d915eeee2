"""Run the Alembic migrations that ship inside the installed `migrations` package, from any cwd."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, pool

from infra.errors import InvalidRequestError


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url` with no alembic.ini needed."""
    config = Config()
    # The package's directory, found through the import system, works for wheels and editable installs.
    config.set_main_option("script_location", importlib.import_module("migrations").__path__[0])
    # ConfigParser interpolates '%', which URL-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@contextmanager
def _revision_named() -> Iterator[None]:
    """A revision alembic does not know (or cannot reach from here) is the caller's to fix: one line."""
    try:
        yield
    except (CommandError, RevisionError) as exc:
        raise InvalidRequestError(f"migration: {str(exc).splitlines()[0]}") from None


def upgrade(database_url: str, revision: str = "head") -> None:
    with _revision_named():
        command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    with _revision_named():
        command.downgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None for an empty database."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


# The revision that creates the audit table: reverting it drops the audit trail.
AUDIT_REVISION = "0001"


def reverted_by(database_url: str, revision: str) -> list[str]:
    """The revisions a downgrade of the database to `revision` would revert, newest first."""
    current = current_revision(database_url)
    if current is None:
        return []
    script = ScriptDirectory.from_config(alembic_config(database_url))
    with _revision_named():
        return [r.revision for r in script.iterate_revisions(current, revision)]
