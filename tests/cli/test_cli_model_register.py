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
        counts = (
            session.scalar(select(func.count()).select_from(RegisteredModel)),
            session.scalar(select(func.count()).select_from(AuditRecord)),
        )
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
    (
        "pickle .bin weights",
        _with({**FILES, "pytorch_model.bin": b"\x80\x04pickle"}),
        "holds pickle weights (pytorch_model.bin)",
    ),
    (
        "pickle .pt weights",
        _with({"model.pt": b"\x80\x04pickle", "config.json": b"{}"}),
        "holds pickle weights (model.pt)",
    ),
    (
        "no manifest",
        lambda g: (_published(g).put_bytes("bad/model.safetensors", b"w").uri.rsplit("/", 1)[0], "a" * 64),
        "has no manifest.json",
    ),
    ("manifest not JSON", _with(FILES, b"not json"), "is not a grin manifest"),
    ("a manifest that is not ours", _with(FILES, b'{"weights": ["model.safetensors"]}'), "is not a grin manifest"),
    (
        "file missing",
        _with(FILES, manifest_bytes({**FILES, "vocab.json": b"{}"})),
        "vocab.json is in the manifest but missing",
    ),
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


# Issue 25: a hash says the bytes are the listed ones, not that they are a model. Each case is listed
# in its manifest with the right sha256, so only a content check refuses it.
def _weights(change: Callable[[dict], None]) -> bytes:
    from safetensors.torch import load, save

    tensors = load(FILES["model.safetensors"])
    change(tensors)
    return save(tensors, metadata={"format": "pt"})


def _listed(**changed: bytes | None) -> Callable[[Grin], tuple[str, str]]:
    files = {k: v for k, v in {**FILES, **changed}.items() if v is not None}
    return _with(files)


def _inbox(grin: Grin, name: str, data: bytes) -> str:
    from infra.storage import open_store

    return open_store(grin.settings).put_bytes(f"inbox/{name}", data).uri


PICKLE = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."
CONTENT_CASES = [
    (
        "random bytes as model.safetensors",
        _listed(**{"model.safetensors": bytes(range(256)) * 16}),
        "model.safetensors: header of",
    ),
    ("truncated weights", _listed(**{"model.safetensors": FILES["model.safetensors"][:-64]}), "truncated"),
    (
        "oversized header",
        _listed(**{"model.safetensors": (2**50).to_bytes(8, "little") + FILES["model.safetensors"][8:]}),
        "more than the 100000000 allowed",
    ),
    ("a pickle named weights.dat", _listed(**{"weights.dat": PICKLE}), "weights.dat is not a file a checkpoint holds"),
    ("a pickle named weights.json", _listed(**{"weights.json": PICKLE}), "weights.json is a pickle"),
    ("a pickle named model.safetensors", _listed(**{"model.safetensors": PICKLE}), "model.safetensors is a pickle"),
    (
        "a torch zip named tokenizer.model",
        _listed(**{"tokenizer.model": b"PK\x03\x04zip"}),
        "tokenizer.model is a zip archive",
    ),
    (
        "a tensor missing",
        _listed(**{"model.safetensors": _weights(lambda t: t.pop("model.norm.weight"))}),
        "not in the weights (model.norm.weight): loading would initialise them at random",
    ),
    (
        "a tensor of another shape",
        _listed(
            **{
                "model.safetensors": _weights(
                    lambda t: t.__setitem__("model.norm.weight", t["model.norm.weight"][:4].clone())
                )
            }
        ),
        "tensor model.norm.weight has shape [4]",
    ),
    ("no config.json", _listed(**{"config.json": None}), "no config.json"),
    ("config.json not JSON", _listed(**{"config.json": b"{"}), "config.json is not JSON"),
    ("a config naming no causal LM", _listed(**{"config.json": b'{"model_type": "no-such-model"}'}), "config.json"),
    ("no tokenizer", _listed(**{"tokenizer.json": None, "tokenizer_config.json": None}), "tokenizer"),
]


@pytest.mark.parametrize(("name", "make", "message"), CONTENT_CASES, ids=[c[0] for c in CONTENT_CASES])
def test_a_checkpoint_whose_content_is_not_a_model_registers_nothing(
    grin: Grin, name: str, make: Callable[[Grin], tuple[str, str]], message: str
) -> None:
    uri, sha256 = make(grin)
    before = (_rows(grin), grin.objects())
    result = grin("model", "register", "tofu", "--checkpoint-uri", uri, "--checkpoint-sha256", sha256)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert (_rows(grin), grin.objects()) == before


DATA_CASES = [
    (
        "training manifest /etc/passwd",
        ["--training-manifest-uri", "file:///etc/passwd"],
        "--training-manifest-uri: 'file:///etc/passwd' is not under an allowed intake root",
    ),
    (
        "training manifest not QA",
        lambda g: ["--training-manifest-uri", _inbox(g, "m.json", b'["x"]')],
        "--training-manifest-uri: record 1 is not a JSON object",
    ),
    (
        "eval suite outside the roots",
        ["--eval-suite-uri", "file:///etc/hostname"],
        "is not under an allowed intake root",
    ),
    (
        "eval suite not a suite",
        lambda g: ["--eval-suite-uri", _inbox(g, "s.json", b'{"token": "x"}')],
        "--eval-suite-uri: unknown part 'token'",
    ),
    ("bad model name", lambda g: [], "model name 'bad name!' must match"),
    ("bad alias", ["--alias", "9lives"], "alias '9lives' must match"),
    (
        "a manifest without a checkpoint",
        ["--no-checkpoint", "--training-manifest-uri", "file:///x"],
        "give --checkpoint-uri too",
    ),
]


@pytest.mark.parametrize(("name", "extra", "message"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_register_reads_its_data_only_from_the_intake_roots_and_checks_it(
    grin: Grin, name: str, extra, message: str
) -> None:
    extra = extra(grin) if callable(extra) else list(extra)
    uri, sha256 = _good(grin)
    checkpoint = [] if "--no-checkpoint" in extra else ["--checkpoint-uri", uri, "--checkpoint-sha256", sha256]
    extra = [e for e in extra if e != "--no-checkpoint"]
    before = (_rows(grin), grin.objects())
    result = grin("model", "register", "bad name!" if "name" in name else "tofu", *checkpoint, *extra)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert (_rows(grin), grin.objects()) == before


def test_register_records_the_checked_manifest_by_hash_and_the_suite_content_addressed(grin: Grin) -> None:
    from infra import registry

    manifest = b'[{"question": "q", "answer": "a"}]'
    suite = b'{"retain": [{"question": "q", "answer": "a"}]}'
    uri, sha256 = _good(grin)
    grin.json(
        "model",
        "register",
        "tofu",
        "--checkpoint-uri",
        uri,
        "--checkpoint-sha256",
        sha256,
        "--training-manifest-uri",
        _inbox(grin, "m.json", manifest),
        "--eval-suite-uri",
        _inbox(grin, "s.json", suite),
    )
    engine = make_engine(grin.settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        version = registry.resolve("tofu@production", session=session)
        assert version.training_manifest_sha256 == hashlib.sha256(manifest).hexdigest()
        assert version.eval_suite_uri.endswith(f"/suites/{hashlib.sha256(suite).hexdigest()}.json")
    engine.dispose()
