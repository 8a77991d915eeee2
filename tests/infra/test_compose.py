"""docker-compose.yml says what Settings reads: no Docker engine needed, the file is parsed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
GRIN_SERVICES = {"migrate", "serve", "gpu-worker", "cpu-worker"}
ONE_SHOT = {"migrate", "minio-bucket"}  # run to completion: no healthcheck


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _settings_field(variable: str) -> str | None:
    """The Settings field a GRIN_* variable sets (nested with `__`; names are case-insensitive, as
    pydantic-settings reads them), or None if it sets none."""
    path = variable.removeprefix("GRIN_").lower().split("__")
    fields = {name.lower(): info for name, info in Settings.model_fields.items()}
    if path[0] not in fields or len(path) > 2:
        return None
    if len(path) == 2:
        nested = {name.lower() for name in getattr(fields[path[0]].annotation, "model_fields", {})}
        return variable if path[1] in nested else None
    return variable


def test_every_grin_service_takes_the_anchor_and_every_grin_variable_is_a_settings_field(compose):
    anchor = compose["x-grin-env"]
    grin = {name for name, service in compose["services"].items() if "build" in service}
    assert grin == GRIN_SERVICES
    unknown = sorted(k for k in anchor if k.startswith("GRIN_") and _settings_field(k) is None)
    assert unknown == [], f"not Settings fields: {unknown}"
    for name in GRIN_SERVICES:
        env = compose["services"][name]["environment"]
        assert set(anchor) <= set(env), (name, sorted(set(anchor) - set(env)))
        extra = sorted(set(env) - set(anchor))
        assert extra == [], (name, extra)
    # what a prod process refuses to start without (infra/settings.py's production checks)
    env = {k.removeprefix("GRIN_").lower(): v for k, v in anchor.items() if k.startswith("GRIN_")}
    settings = Settings(**{k: v for k, v in env.items() if k in Settings.model_fields})
    assert settings.env == "prod" and settings.database_url.startswith("postgresql")
    assert settings.storage_url.startswith("s3://") and settings.s3_endpoint_url


def test_the_checker_knows_a_stray_variable_when_it_sees_one():
    assert _settings_field("GRIN_DATABASE_URL") and _settings_field("GRIN_GATE__FORGET_ROUGEL_MAX")
    assert _settings_field("GRIN_DATABSE_URL") is None and _settings_field("GRIN_GATE__NO_SUCH") is None


def test_images_healthchecks_and_volumes_are_declared(compose):
    services, declared = compose["services"], set(compose.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if name not in ONE_SHOT:
            assert "test" in (service.get("healthcheck") or {}), f"{name} has no healthcheck"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source!r}"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
    workers = [n for n, s in services.items() if s.get("command") == ["worker"]]
    assert sorted(workers) == ["cpu-worker", "gpu-worker"]
    assert "devices" in str(services["gpu-worker"].get("deploy")) and "deploy" not in services["cpu-worker"]
