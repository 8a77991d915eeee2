"""The service's one configuration object, read from `GRIN_*` environment variables.

It is validated once at start so that a production process with an embedded database, a
local object store or an S3 store without credentials refuses to run instead of quietly
writing deletion evidence where nobody else can see it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from policy.gate_policy import GatePolicy
from policy.rebuild_policy import RebuildPolicy

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_tofu_dir() -> Path | None:
    """The TOFU copy beside the checkout (shared/data/tofu, or inside it), or None to take
    `locuslab/TOFU` from the hub. `GRIN_TOFU_DIR` overrides it (`Settings.tofu_dir`)."""
    for root in (REPO_ROOT.parent, REPO_ROOT):
        if (root / "shared" / "data" / "tofu").is_dir():
            return root / "shared" / "data" / "tofu"
    return None


class Settings(BaseSettings):
    """Everything a grin process needs to know about where its state lives."""

    model_config = SettingsConfigDict(env_prefix="GRIN_", env_nested_delimiter="__", frozen=True)

    env: Literal["dev", "test", "prod"] = "dev"
    state_dir: Path = Path(".grin")
    database_url: str = Field("", description="Default: sqlite:///<state_dir>/grin.db")
    storage_url: str = Field("", description="file:///abs/dir or s3://bucket/prefix; default <state_dir>/objects")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    tofu_dir: Path | None = Field(default_factory=default_tofu_dir)
    lease_seconds: int = Field(900, gt=0, description="How long a claim holds a ticket without a heartbeat.")
    max_attempts: int = Field(3, ge=1, description="Claims per ticket before an infrastructure failure is final.")
    batch_cron: str = "0 2 * * *"
    gate: GatePolicy = GatePolicy()
    rebuild: dict[str, RebuildPolicy] = Field(
        default_factory=dict,
        description="Exact deletion's schedule per model line (`*`: every line without its own), e.g. "
        'GRIN_REBUILD=\'{"*": {"every_days": 30, "after_deletions": 50}}\'; a line with none is rebuilt by hand only.',
    )
    rebuild_check_interval_s: float = Field(
        3600, gt=0, description="How often the `rebuild-line` deployment checks which lines are due."
    )
    cache_dir: Path | None = Field(
        None, description="Trained models and fetched checkpoints; default <state_dir>/cache."
    )
    gpu_dispatch: Literal["auto", "inline", "worker"] = Field(
        "auto",
        description="Where the ML stages run: a `grin worker` process (worker), the flow's own "
        "process (inline), or worker whenever a Prefect server is configured (auto).",
    )
    gpu_pickup_timeout_s: float = Field(
        300, gt=0, description="How long a stage waits for a worker to take it before the run fails."
    )
    gpu_stage_timeout_s: float = Field(6 * 3600, gt=0, description="How long one ML stage may run on a worker.")
    stage_processes: int = Field(
        1,
        ge=1,
        description="Processes the scoring and unlearning stages run on (DDP under accelerate "
        "launch, one per GPU, or gloo on CPUs; the result equals one process's within float tolerance). "
        "With more than one, unlearning keeps no progress checkpoints: a killed run starts the round again.",
    )
    checkpoint_interval_s: float = Field(
        60,
        ge=0,
        description="Unlearning saves its progress to the store at the first epoch end this "
        "long after its last save (0 = every epoch), so a reclaimed ticket's next run resumes there; "
        "a save holds the selected weights and their optimizer state.",
    )
    gpu_worker_dead_after_s: float = Field(
        60,
        gt=0,
        description="A stage fails (and is retried) once no GPU worker has sent a "
        "heartbeat for this long: its worker died.",
    )
    retain_sample_size: int = Field(
        2000,
        ge=1,
        description="Retain records sampled from the training manifest for unlearning: the "
        "privacy schedule's repair phase works from them, and 400 of the demo line's 577 left its "
        "retain ROUGE-L at 0.84x the parent.",
    )
    eval_retain_size: int = Field(
        100, ge=0, description="Further retain records held out for the gate, when the model has no eval suite."
    )
    promote_alias: str | None = Field(
        "production",
        description="Alias moved to a registered version when it pointed at the parent; None = never.",
    )
    keep_inbox_objects: bool = Field(
        False,
        description="Keep the requester's forget and keywords objects once a ticket has ended "
        "(default: delete them; the purge's audit record says which).",
    )
    superseded_purge_days: float | None = Field(
        30,
        ge=0,
        description="Days after which the checkpoint, manifest and eval suite of a version that "
        "holds data deleted by a later version are purged; None = never.",
    )
    intake_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where ticket objects may live: s3://bucket/prefix/ or file:///dir/ roots "
        "(JSON list); default: the service store's inbox/ (<storage_url>/inbox/).",
    )
    intake_max_object_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Largest forget, retain or keywords object accepted at filing."
    )
    intake_max_records: int = Field(50_000, gt=0, description="Most QA records (or key phrases) one object may hold.")
    max_sigma2: float = Field(0.01, ge=0.0, description="Largest per-ticket noise variance (the paper uses 0.001).")
    reclaim_interval_s: int = Field(
        60, gt=0, description="How often `grin serve` sweeps lapsed leases back to the queue."
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        # Resolved once, so a later chdir (a worker, a test) cannot move the database or the store.
        value = value.expanduser().resolve()
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory (GRIN_STATE_DIR)")
        return value

    @field_validator("intake_roots", mode="before")
    @classmethod
    def _json_list_of_roots(cls, value: object) -> object:
        # Parsed here rather than by pydantic-settings, whose error names neither the variable nor the fix.
        if not isinstance(value, str):
            return value
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list):
            raise ValueError('GRIN_INTAKE_ROOTS must be a JSON list of roots, e.g. ["s3://bucket/inbox/"]')
        return value

    @field_validator("batch_cron")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"batch_cron must have 5 fields (minute hour day month weekday), got {value!r}")
        return value

    @model_validator(mode="after")
    def _defaults_and_safety(self) -> Settings:
        # Derived defaults depend on state_dir, so they are filled in after it is known.
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.state_dir / 'grin.db'}")
        if self.cache_dir is None:
            object.__setattr__(self, "cache_dir", self.state_dir / "cache")
        if not self.storage_url:
            object.__setattr__(self, "storage_url", (self.state_dir / "objects").as_uri())
        if not self.intake_roots:
            object.__setattr__(self, "intake_roots", [self.storage_url.rstrip("/") + "/inbox/"])
        try:
            make_url(self.database_url)
        except ArgumentError as exc:
            raise ValueError(f"database_url is not a database URL: {exc}") from None
        storage = urlsplit(self.storage_url)
        if storage.scheme not in ("file", "s3"):
            raise ValueError(f"storage_url must be file:///abs/dir or s3://bucket/prefix, got {self.storage_url!r}")
        if storage.scheme == "s3" and not storage.netloc:
            raise ValueError(f"storage_url {self.storage_url!r} names no bucket")
        if storage.scheme == "file" and (storage.netloc or not storage.path.startswith("/")):
            raise ValueError(f"storage_url {self.storage_url!r} must be an absolute file:/// URL")
        for root in self.intake_roots:
            parts = urlsplit(root)
            if (
                parts.scheme not in ("file", "s3")
                or (parts.scheme == "s3" and not parts.netloc)
                or (parts.scheme == "file" and (parts.netloc or not parts.path.startswith("/")))
            ):
                raise ValueError(f"intake root {root!r} must be s3://bucket/prefix/ or file:///abs/dir/")
        if self.env not in ("dev", "test"):
            self._refuse_unsafe(storage.scheme)
        return self

    def rebuild_policy(self, line: str) -> RebuildPolicy | None:
        """The line's rebuild schedule: its own, else the `*` one, else None (rebuilt by hand only)."""
        return self.rebuild.get(line) or self.rebuild.get("*")

    def _refuse_unsafe(self, storage_scheme: str) -> None:
        if make_url(self.database_url).get_backend_name() == "sqlite":
            raise ValueError(f"env={self.env} refuses a SQLite database: set GRIN_DATABASE_URL to PostgreSQL")
        if storage_scheme == "file":
            raise ValueError(f"env={self.env} refuses a local object store: set GRIN_STORAGE_URL to s3://…")
        if not (self.s3_access_key_id and self.s3_secret_access_key):
            raise ValueError(
                f"env={self.env} with an S3 store needs GRIN_S3_ACCESS_KEY_ID and GRIN_S3_SECRET_ACCESS_KEY"
            )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings()
