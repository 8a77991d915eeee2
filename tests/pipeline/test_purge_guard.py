"""Exactly once, from the purge's side: a run's discarded candidates go, but never a checkpoint (or
mask) that a registered version names, whatever the run believes about its registration."""

from __future__ import annotations

from infra import registry
from infra.storage import open_store
from tasks.contracts import CheckpointRef, ObjectRef
from tasks.purge import purge_scratch
from tasks.resources import sessions
from tests.fixtures.checkpoints import FILES, store_checkpoint


def test_a_registered_candidate_survives_the_purge_of_its_run(make_settings, sqlite_url, use_settings):
    settings = make_settings(database_url=sqlite_url)
    use_settings(settings)
    store = open_store(settings)
    registered_uri, registered_sha = store_checkpoint(store, "checkpoints/registered")
    other_uri, other_sha = store_checkpoint(store, "checkpoints/discarded", {**FILES, "x.json": b"{}"})
    mask = store.put_bytes("runs/r1/mask.safetensors", b"mask")
    with sessions(settings).begin() as session:
        registry.register_model("tofu", session=session)
        registry.add_version(
            "tofu",
            session=session,
            checkpoint_uri=registered_uri,
            checkpoint_sha256=registered_sha,
            mask_uri=mask.uri,
            mask_sha256=mask.sha256,
        )

    counts = purge_scratch.fn(
        "ticket-1",
        "ticket-1-0123abcd",
        [1],
        None,
        [CheckpointRef(uri=registered_uri, sha256=registered_sha), CheckpointRef(uri=other_uri, sha256=other_sha)],
        [ObjectRef(uri=mask.uri, sha256=mask.sha256)],
    )

    # deleted: the discarded one's FILES, x.json and manifest; kept: the registered one's FILES and manifest
    assert counts["candidate_checkpoint_objects"] == len(FILES) + 2 and counts["candidate_masks"] == 0
    assert store.list("checkpoints/discarded/") == []
    assert len(store.list("checkpoints/registered/")) == len(FILES) + 1 and store.exists("runs/r1/mask.safetensors")
