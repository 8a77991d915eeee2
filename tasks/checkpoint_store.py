"""Checkpoint directories to and from the object store, content-addressed by their manifest hash.

A checkpoint lives under `checkpoints/<sha256>/` where the sha256 is that of its manifest (which
hashes every file), so the key proves the content; a local copy is fetched once per process
into the state dir and verified before any load.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from grin_core.models.checkpoint import CARD_DATA, MANIFEST, checkpoint_sha256, verify_checkpoint
from infra.errors import ChecksumMismatchError
from infra.failpoints import failpoint
from infra.settings import Settings, get_settings
from infra.storage import ObjectStore, locate
from policy.round_setting import RoundSetting
from tasks.contracts import CheckpointRef, Snapshot


def candidate_card(
    setting: RoundSetting,
    parent: CheckpointRef,
    snapshot: Snapshot,
    run_id: str,
    round_no: int,
    **method_fields: object,
) -> dict[str, object]:
    """A candidate's card (GRIN's and GRUN's): the run and round that made it, its parent, every deletion
    along its lineage by ticket id and forget-set hash only, the manifest it stands on, and the method's fields."""
    return {
        "epochs": setting.epochs,
        "parent": parent.sha256,
        "forget_snapshot_sha256": snapshot.forget.sha256,
        "run": run_id,
        "round": round_no,
        "deletions": [d.model_dump() for d in snapshot.lineage_deletions],
        "training_manifest_sha256": snapshot.manifest.sha256 if snapshot.manifest else None,
        **method_fields,
    }


def upload_checkpoint(directory: Path, store: ObjectStore) -> CheckpointRef:
    """Upload every file, the card's fields first and the manifest last: a listed manifest means a complete
    checkpoint, and a half-uploaded one still names its run (the reclaimer purges it by that card)."""
    sha = checkpoint_sha256(directory)
    prefix = f"checkpoints/{sha}"
    files = sorted(
        (p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST),
        key=lambda p: (p.name != CARD_DATA, p.as_posix()),
    )
    for n, path in enumerate([*files, directory / MANIFEST]):
        store.put_file(f"{prefix}/{path.relative_to(directory).as_posix()}", path)
        if n == 0:
            failpoint("checkpoint.upload")  # crash-safety tests: die with the checkpoint half uploaded
    return CheckpointRef(uri=store.uri(prefix), sha256=sha)


def fetch_checkpoint(ref: CheckpointRef, settings: Settings | None = None) -> Path:
    """A verified local copy of `ref` under `<cache_dir>/checkpoints/<sha256>`."""
    settings = settings or get_settings()
    target = settings.cache_dir / "checkpoints" / ref.sha256
    if (target / MANIFEST).is_file():
        return target
    store, prefix = locate(ref.uri, settings=settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{ref.sha256[:12]}-", dir=target.parent))
    try:
        for key in store.list(prefix.rstrip("/") + "/"):
            destination = staging / key[len(prefix.rstrip("/")) + 1 :]
            destination.parent.mkdir(parents=True, exist_ok=True)
            store.get_file(key, destination)
        verify_checkpoint(staging)
        if checkpoint_sha256(staging) != ref.sha256:
            raise ChecksumMismatchError(f"{ref.uri}: manifest sha256 differs from the registered {ref.sha256}")
        try:
            staging.rename(target)
        except OSError:  # another worker fetched it first
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def delete_checkpoint(ref: CheckpointRef, settings: Settings | None = None) -> int:
    """Remove an unregistered candidate from the store; returns the number of objects deleted."""
    store, prefix = locate(ref.uri, settings=settings or get_settings())
    keys = store.list(prefix.rstrip("/") + "/")
    for key in keys:
        store.delete(key)
    return len(keys)
