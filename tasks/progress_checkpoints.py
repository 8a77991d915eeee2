"""Unlearning progress in the object store, so a reclaimed ticket's next run resumes instead of restarting.

Layout: `scratch/progress/t<id>-<id>.../<fingerprint>/step-<N>/<file>` holds one checkpoint
(grin_core/unlearning/resume.py) and `.../latest.json` names the newest complete one with every file's
sha256; the scoring stage keeps its mask the same way (`.../mask.safetensors`). The pointer is
written after its files, and older steps are deleted after the pointer, so a kill at any moment
leaves a complete checkpoint named (or none). The fingerprint hashes every
input the result depends on (parent, snapshots, mask, settings), so a run resumes only its own
progress. The prefix lies under `scratch/` and goes when its tickets end (tasks/purge.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from prefect import get_run_logger
from transformers import TrainerCallback

from grin_core.scoring.mask import Mask, MaskIntegrityError
from grin_core.unlearning.resume import fingerprint
from infra.errors import ChecksumMismatchError, ObjectNotFoundError
from infra.storage import ObjectStore
from tasks.contracts import CheckpointRef, Snapshot

ROOT = "scratch/progress/"
POINTER = "latest.json"
MASK = "mask.safetensors"


def tickets_prefix(ticket_ids: Iterable[int]) -> str:
    return f"{ROOT}t{'-'.join(str(i) for i in sorted(set(ticket_ids)))}/"


def ticket_ids_of(key: str) -> set[int]:
    """The ticket ids a progress object (`scratch/progress/t<id>-<id>/...`) belongs to; empty if not one."""
    name = key.removeprefix(ROOT).split("/", 1)[0]
    return {int(part) for part in name[1:].split("-") if part.isdigit()} if name.startswith("t") else set()


class ProgressCheckpoints(TrainerCallback):
    """Ships every progress checkpoint the trainer saves to the store; fetches the newest to resume.

    The fingerprint covers the parent, the run's forget and retain snapshots and `parts` (what else
    the stage's result depends on), so a stage resumes only what a run of the same inputs saved.
    """

    def __init__(self, store: ObjectStore, parent: CheckpointRef, snapshot: Snapshot, **parts: object) -> None:
        self.store = store
        self.fingerprint = fingerprint(
            {"parent": parent.sha256, "forget": snapshot.forget.sha256, "retain": snapshot.retain.sha256, **parts}
        )
        self.prefix = f"{tickets_prefix(d.ticket_id for d in snapshot.deletions)}{self.fingerprint}/"

    def fetch(self, directory: Path) -> tuple[Path, int] | None:
        """The newest checkpoint, verified, copied into `directory`, and its global step; None if none."""
        try:
            pointer = json.loads(self.store.get_bytes(self.prefix + POINTER))
            step = int(pointer["step"])
            target = directory / f"checkpoint-{step}"
            for name, sha256 in pointer["files"].items():
                self.store.get_file(f"{self.prefix}step-{step}/{name}", target / name, expected_sha256=sha256)
        except ObjectNotFoundError:
            return None
        except (ChecksumMismatchError, KeyError, ValueError, TypeError) as exc:  # damaged: start over
            get_run_logger().warning(
                "progress checkpoint unusable (%s); unlearning starts from the beginning", type(exc).__name__
            )
            return None
        return target, step

    def fetch_mask(self, path: Path) -> Mask | None:
        """The mask an earlier run of these tickets scored with the same inputs, verified; None if none."""
        try:
            self.store.get_file(self.prefix + MASK, path)
            return Mask.load(path)
        except ObjectNotFoundError:
            return None
        except MaskIntegrityError:
            get_run_logger().warning("kept mask unusable; scoring again")
            return None

    def keep_mask(self, path: Path) -> None:
        self.store.put_file(self.prefix + MASK, path)

    def on_save(self, args, state, control, **kwargs):
        local = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        step_prefix = f"{self.prefix}step-{state.global_step}/"
        files = {
            path.name: self.store.put_file(step_prefix + path.name, path).sha256
            for path in sorted(local.iterdir())
            if path.is_file()
        }
        self.store.put_bytes(self.prefix + POINTER, json.dumps({"step": state.global_step, "files": files}).encode())
        for key in self.store.list(self.prefix):
            if not key.startswith(step_prefix) and key != self.prefix + POINTER:
                self.store.delete(key)
        return control
