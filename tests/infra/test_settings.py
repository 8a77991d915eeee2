from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.settings import REPO_ROOT, Settings, get_settings
from policy.gate_policy import GatePolicy


def test_defaults_derive_from_an_absolute_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.env == "dev"
    assert settings.state_dir == tmp_path / ".grin"
    assert settings.database_url == f"sqlite:///{tmp_path}/.grin/grin.db"
    assert settings.storage_url == f"file://{tmp_path}/.grin/objects"
    assert (settings.lease_seconds, settings.max_attempts, settings.batch_cron) == (
        900,
        3,
        "0 2 * * *",
    )
    assert settings.s3_region == "us-east-1"
    assert settings.gate == GatePolicy()


def test_tofu_dir_defaults_to_the_shared_copy_beside_the_checkout() -> None:
    shared = REPO_ROOT.parent / "shared" / "data" / "tofu"
    assert Settings().tofu_dir == (shared if shared.is_dir() else None)


def test_environment_variables_with_nested_gate_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIN_LEASE_SECONDS", "60")
    monkeypatch.setenv("GRIN_GATE__MAX_ROUNDS", "5")
    monkeypatch.setenv("GRIN_GATE__FORGET_ROUGEL_MAX", "0.25")
    monkeypatch.setenv("GRIN_S3_SECRET_ACCESS_KEY", "hunter2")
    settings = Settings()
    assert settings.lease_seconds == 60
    assert settings.gate.max_rounds == 5
    assert settings.gate.forget_rougeL_max == 0.25
    assert settings.gate.ladder_p_factor == 2.0
    assert "hunter2" not in repr(settings)


def test_get_settings_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("GRIN_MAX_ATTEMPTS", "7")
    first = get_settings()
    monkeypatch.setenv("GRIN_MAX_ATTEMPTS", "9")
    assert get_settings() is first and first.max_attempts == 7
    get_settings.cache_clear()


PROD_OK = {
    "env": "prod",
    "database_url": "postgresql+psycopg2://grin:pw@db:5432/grin",
    "storage_url": "s3://grin/objects",
    "s3_access_key_id": "grin",
    "s3_secret_access_key": "secret",
}


def test_prod_accepts_postgres_and_s3_with_credentials() -> None:
    settings = Settings(**PROD_OK)
    assert settings.storage_url == "s3://grin/objects"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"database_url": ""}, "refuses a SQLite database"),
        ({"database_url": "sqlite:////var/lib/grin/grin.db"}, "refuses a SQLite database"),
        ({"storage_url": "file:///var/lib/grin/objects"}, "refuses a local object store"),
        (
            {"s3_secret_access_key": None},
            "needs GRIN_S3_ACCESS_KEY_ID and GRIN_S3_SECRET_ACCESS_KEY",
        ),
    ],
)
def test_prod_refuses_unsafe_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{**PROD_OK, **change})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("storage_url", "gs://bucket/x", "storage_url must be"),
        ("storage_url", "s3:///prefix", "names no bucket"),
        ("storage_url", "file://relative/dir", "absolute file:///"),
        ("database_url", "not a url", "not a database URL"),
        ("batch_cron", "0 2 * *", "5 fields"),
        ("lease_seconds", 0, "greater than 0"),
        ("env", "staging", "Input should be 'dev', 'test' or 'prod'"),
    ],
)
def test_malformed_values_are_refused_in_every_env(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_gate_policy_ranges_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        GatePolicy(forget_rougeL_max=1.5)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        GatePolicy(ladder_p_factor=0.5)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        GatePolicy(forget_rouge_max=0.3)
    assert all(field.description for field in GatePolicy.model_fields.values())
