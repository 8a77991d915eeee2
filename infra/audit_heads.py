"""Audit chain heads published to the object store, so a rewrite of the database alone is caught.

After every ticket's run the chain head (`audit.head`) is written to `audit/heads/<count>-<hash>.json`
(a new key each time; nothing of grin overwrites or deletes one; with S3 Object Lock on the bucket
the store itself refuses to). `grin audit verify --expect-head store` checks the chain against every
published head, not only the newest: records deleted from the end, or a chain rewritten with
recomputed hashes, no longer contain them, even if a head was published after the rewrite. And a
head is published only once the newest one already published is still in the chain, so the
service never vouches for a chain that lost what it vouched for before.

An object under `audit/heads/` that is not a head (its name or its JSON) is an error with one line
naming it: something other than the service wrote there.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra import audit
from infra.audit import ChainHead
from infra.db.models import AuditRecord
from infra.errors import GrinError
from infra.storage import ObjectStore

PREFIX = "audit/heads/"
_KEY = re.compile(rf"^{PREFIX}(\d{{12}})-([0-9a-f]{{64}})\.json$")


class AuditHeadError(GrinError):
    """An object under audit/heads/ that is not a head the service published."""


class AuditHeadConflictError(GrinError):
    """The chain no longer holds the newest published head, so no newer head is published."""


def head_key(head: ChainHead) -> str:
    return f"{PREFIX}{head.count:012d}-{head.hash}.json"


def publish_head(head: ChainHead, *, store: ObjectStore) -> str | None:
    """Write `head` once under its own key; None for an empty chain. Returns the object's URI."""
    if head.id is None:
        return None
    key = head_key(head)
    if not store.exists(key):
        body = json.dumps({"id": head.id, "hash": head.hash, "count": head.count, "time": head.time}, sort_keys=True)
        store.put_bytes(key, body.encode())
    return store.uri(key)


def _count(key: str) -> int:
    match = _KEY.match(key)
    if match is None:
        raise AuditHeadError(f"{key} is not a published chain head (audit/heads/<12-digit count>-<sha256>.json)")
    return int(match.group(1))


def _read(key: str, store: ObjectStore) -> ChainHead:
    """The head stored under `key`, which must agree with its own name."""
    count = _count(key)
    try:
        head = ChainHead.from_json(json.loads(store.get_bytes(key)))
        if not isinstance(head.id, int) or head.count != count or head_key(head) != key:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AuditHeadError(f"{key} does not hold the head its name says (JSON with id, hash, count)") from None
    return head


def published_heads(*, store: ObjectStore) -> list[ChainHead]:
    """Every published head, fewest records first; AuditHeadError for anything else under the prefix."""
    keys = sorted(store.list(PREFIX), key=_count)
    return [_read(key, store) for key in keys]


def latest_published(*, store: ObjectStore) -> ChainHead | None:
    """The published head with the most records, or None when none was published. Every name under
    the prefix is checked, and every object at the highest count read (normally one)."""
    counts = {key: _count(key) for key in store.list(PREFIX)}
    if not counts:
        return None
    newest = max(counts.values())
    heads = [_read(key, store) for key, count in sorted(counts.items()) if count == newest]  # each checked
    return heads[0]


def check_latest_published_held(*, session: Session, store: ObjectStore) -> None:
    """AuditHeadConflictError unless the newest published head is still in the chain (the same record
    id with the same hash): nothing is published, or written and then published, on top of a chain
    that lost it."""
    previous = latest_published(store=store)
    if previous is None or previous.id is None:
        return
    held = session.scalar(select(AuditRecord.hash).where(AuditRecord.id == previous.id))
    if held != previous.hash:
        what = "is gone" if held is None else "has another hash"
        raise AuditHeadConflictError(
            f"not publishing the chain head: record {previous.id} of the newest published head {what} "
            "(truncated or rewritten); run `grin audit verify --expect-head store`"
        )


def publish_current_head(*, session: Session, store: ObjectStore) -> str | None:
    """Publish the chain's head once the newest head published before it is checked to be held."""
    check_latest_published_held(session=session, store=store)
    return publish_head(audit.head(session=session), store=store)
