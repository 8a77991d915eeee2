"""Which registered version a model line may be fine-tuned from (`grin model train --base`, the
`train-model` flow's `base`), refused in one line otherwise, before anything trains.

A base must still have its checkpoint (not purged), hold its own weights (a GRUN version is an
intervention over another checkpoint: fine-tuning it would train weights it does not own), and must not
hold data deleted by a later version's tickets: a line fine-tuned from it would serve that data again.
The fine-tuned version records the base in its lineage (`hparams["fine_tuned_from"]`); the
`base_checkpoint_*` columns stay GRUN's, whose checkpoint needs its base to run.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from infra import registry
from infra.db.models import ModelVersion
from infra.errors import InvalidRequestError, UnknownModelError


def fine_tune_base(ref: str, *, session: Session) -> ModelVersion:
    """The version `ref` (`line@version`, `line@alias` or `line`) names, if a line may be fine-tuned from it."""
    try:
        version = registry.resolve(ref, session=session)
    except UnknownModelError as exc:
        raise UnknownModelError(f"base {ref}: {exc}") from None
    name = f"{version.model.name}@{version.version}"
    if version.purged_at is not None:
        raise InvalidRequestError(f"base {name} was purged: its checkpoint is gone")
    if version.base_checkpoint_sha256:
        raise InvalidRequestError(
            f"base {name} is a GRUN intervention over checkpoint {version.base_checkpoint_sha256[:12]}; "
            "fine-tune from a version that holds its own weights"
        )
    if version.holds_deleted_data_of:
        raise InvalidRequestError(
            f"base {name} holds data deleted by tickets {sorted(version.holds_deleted_data_of)}; "
            "fine-tune from the version that answers them"
        )
    return version
