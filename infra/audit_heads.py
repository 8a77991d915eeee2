"""Audit chain heads published to the object store, so a rewrite of the database alone is caught.

After every ticket's run the chain head (`audit.head`) is written to `audit/heads/<count>-<hash>.json`
(a new key each time; nothing of grin overwrites or deletes one; with S3 Object Lock on the bucket
the store itself refuses to). `grin audit verify --expect-head store` checks the chain against the
newest published head: records deleted from the end, or a chain rewritten with recomputed hashes,
no longer contain it.
"""

from __future__ import annotations

import json

from infra.audit import ChainHead
from infra.storage import ObjectStore

PREFIX = "audit/heads/"


def head_key(head: ChainHead) -> str:
    return f"{PREFIX}{head.count:012d}-{head.hash}.json"


def publish_head(head: ChainHead, *, store: ObjectStore) -> str | None:
    """Write `head` once under its own key; None for an empty chain. Returns the object's URI."""
    if head.id is None:
        return None
    key = head_key(head)
    if not store.exists(key):
        body = json.dumps({"id": head.id, "hash": head.hash, "count": head.count, "time": head.time},
                          sort_keys=True)
        store.put_bytes(key, body.encode())
    return store.uri(key)


def latest_published(*, store: ObjectStore) -> ChainHead | None:
    """The published head with the most records, or None when none was published."""
    keys = [k for k in store.list(PREFIX) if k.endswith(".json")]
    if not keys:
        return None
    return ChainHead.from_json(json.loads(store.get_bytes(max(keys))))
