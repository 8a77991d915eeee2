"""What a deletion request must contain, checked before anything about it is stored."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from infra.audit import canonical_json, sha256_hex
from policy.methods import Method
from policy.round_setting import GRIN_ONLY, RoundSettingOverrides

MODEL_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(@[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$"

# C0 and C1 controls (NUL among them: PostgreSQL text cannot hold it) and unpaired surrogates
# (not encodable as UTF-8): refused in every string a ticket stores.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _storable(value: str) -> str:
    found = _UNSTORABLE.search(value)
    if found:
        raise ValueError(f"holds a control character (U+{ord(found.group()):04X}) at position {found.start()}")
    return value


Text = AfterValidator(_storable)
URI = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Text]


class TicketRequest(BaseModel):
    """A deletion request as filed by compliance staff (CLI, JSON file or the run form)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000), Text]
    model: Annotated[str, StringConstraints(strip_whitespace=True, pattern=MODEL_REF_PATTERN)] = Field(
        description="A registered model: `name` (its production version), `name@alias` or `name@version`."
    )
    forget_uris: list[URI] = Field(min_length=1, description="Objects holding the QA records to forget.")
    retain_uris: list[URI] | None = Field(
        None,
        min_length=1,
        description="Retain records; default: sampled from the model's training manifest.",
    )
    keywords_uri: URI | None = None
    method: Method = Method.match  # profile matching: the service default (grin_core UnlearnConfig)
    hparams: RoundSettingOverrides = RoundSettingOverrides()  # over the method's defaults (policy/round_setting.py)
    requested_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Text]
    legal_basis: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Text]
    due_date: date | None = None
    idempotency_key: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Text] | None
    ) = None

    @model_validator(mode="after")
    def _overrides_fit_the_method(self) -> TicketRequest:
        grin_only = [k for k in GRIN_ONLY if getattr(self.hparams, k) is not None]
        if self.method is Method.grun and grin_only:
            raise ValueError(
                f"hparams {', '.join(grin_only)} select and perturb weights (GRIN); method grun "
                "changes no weight and has none to select"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.model.split("@", 1)[0]

    def hparam_overrides(self) -> dict[str, Any]:
        return self.hparams.model_dump(exclude_none=True)

    def sha256(self) -> str:
        """Fingerprint of the request's content; the idempotency key is how it is named, not what it asks."""
        return sha256_hex(canonical_json(self.model_dump(mode="json", exclude={"idempotency_key"})))
