"""Per-process handles on the service's database and object store, built from Settings once."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from infra.db.session import make_sessionmaker
from infra.settings import Settings, get_settings
from infra.storage import ObjectStore, open_store


@lru_cache(maxsize=8)
def _sessionmaker(database_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(database_url)


def sessions(settings: Settings | None = None) -> sessionmaker[Session]:
    """Session factory of the service database; `with sessions().begin() as s:` is one unit of work."""
    return _sessionmaker((settings or get_settings()).database_url)


def object_store(settings: Settings | None = None) -> ObjectStore:
    return open_store(settings or get_settings())
