from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

from infra.db import models  # noqa: F401  (tables on the metadata)
from infra.db.base import Base
from infra.db.migrate import current_revision, downgrade, upgrade

HEAD = "0005"
TABLES = {
    "tickets",
    "registered_models",
    "model_versions",
    "model_aliases",
    "model_version_tickets",
    "audit_records",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _pg_triggers(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return set(connection.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models_tables_and_downgrade_removes_them(db_url: str) -> None:
    assert current_revision(db_url) == HEAD
    assert _tables(db_url) == TABLES
    engine = create_engine(db_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert drift == [], f"models and migrations disagree: {drift}"
    if db_url.startswith("postgresql"):
        assert {"audit_records_append_only", "audit_records_no_truncate"} <= _pg_triggers(db_url)

    downgrade(db_url, "0001")  # one step back: on SQLite a batch-mode table rebuild
    assert "eval_suite_uri" not in _columns(db_url, "model_versions")
    assert "checkpoint_sha256" in _columns(db_url, "model_versions")

    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    assert _tables(db_url) == set()
    if db_url.startswith("postgresql"):
        assert _pg_triggers(db_url) == set()

    upgrade(db_url)
    assert _tables(db_url) == TABLES


def test_url_with_a_percent_sign_reaches_alembic(tmp_path: Path) -> None:
    # ConfigParser would read '%2F' as interpolation syntax if the URL were passed raw.
    url = f"sqlite:///{tmp_path / 'odd%2Fname.db'}"
    upgrade(url)
    assert current_revision(url) == HEAD
