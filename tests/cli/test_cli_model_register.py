"""`grin model register` verifies the checkpoint before any row is written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from infra.db.models import AuditRecord, RegisteredModel
from infra.db.session import make_engine, make_sessionmaker
from infra.storage import LocalStore
from tests.cli.conftest import Grin
from tests.fixtures.checkpoints import FILES, manifest_bytes, store_checkpoint


def _rows(grin: Grin) -> tuple[int, int]:
    engine = make_engine(grin.settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        counts = (session.scalar(select(func.count()).select_from(RegisteredModel)),
                  session.scalar(select(func.count()).select_from(AuditRecord)))
    engine.dispose()
    return counts


def _published(grin: Grin) -> LocalStore:
    return LocalStore(grin.settings.state_dir / "published")


def _good(grin: Grin) -> tuple[str, str]:
    return store_checkpoint(_published(grin), "good")


def _with(files: dict[str, bytes], manifest: bytes | None = None) -> Callable[[Grin], tuple[str, str]]:
    return lambda grin: store_checkpoint(_published(grin), "bad", files, manifest)


def _altered(grin: Grin) -> tuple[str, str]:
    uri, sha = store_checkpoint(_published(grin), "bad")
    _published(grin).put_bytes("bad/model.safetensors", b"weights swapped after hashing")
    return uri, sha


CASES = [
    ("sha256 not hex", lambda g: (_good(g)[0], "deadbeef"), "is not 64 lowercase hex digits"),
    ("sha256 of another checkpoint", lambda g: (_good(g)[0], "b" * 64), "manifest sha256 is"),
    ("http URI", lambda g: ("http://models.example/tofu", _good(g)[1]), "unsupported URI scheme 'http'"),
    ("https URI", lambda g: ("https://models.example/tofu", _good(g)[1]), "unsupported URI scheme 'https'"),
    ("nothing at the URI", lambda g: (_published(g).uri("nothing"), "a" * 64), "no checkpoint at"),
    ("pickle .bin weights", _with({**FILES, "pytorch_model.bin": b"\x80\x04pickle"}), "holds pickle weights (pytorch_model.bin)"),
    ("pickle .pt weights", _with({"model.pt": b"\x80\x04pickle", "config.json": b"{}"}), "holds pickle weights (model.pt)"),
    ("no manifest", lambda g: (_published(g).put_bytes("bad/model.safetensors", b"w").uri.rsplit("/", 1)[0], "a" * 64),
     "has no manifest.json"),
    ("manifest not JSON", _with(FILES, b"not json"), "is not a grin manifest"),
    ("a manifest that is not ours", _with(FILES, b'{"weights": ["model.safetensors"]}'), "is not a grin manifest"),
    ("file missing", _with(FILES, manifest_bytes({**FILES, "vocab.json": b"{}"})), "vocab.json is in the manifest but missing"),
    ("extra file", _with({**FILES, "extra.txt": b"x"}, manifest_bytes(FILES)), "extra.txt is not in the manifest"),
    ("file altered after hashing", _altered, "sha256 of model.safetensors does not match its manifest"),
    ("no safetensors", _with({"config.json": b"{}"}), "holds no .safetensors weights"),
]


@pytest.mark.parametrize(("name", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_checkpoint_that_does_not_verify_registers_nothing(
    grin: Grin, name: str, make: Callable[[Grin], tuple[str, str]], message: str
) -> None:
    uri, sha256 = make(grin)
    before = _rows(grin)
    result = grin("model", "register", "tofu", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert _rows(grin) == before
    assert not (grin.settings.cache_dir / "checkpoints").exists()  # nothing was copied anywhere


def test_a_verified_checkpoint_registers(grin: Grin) -> None:
    uri, sha256 = _good(grin)
    assert sha256 == hashlib.sha256(manifest_bytes(FILES)).hexdigest()
    model = grin.json("model", "register", "tofu", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    assert model["versions"] == [1] and model["aliases"] == {"production": 1}
