"""`grin model import` checks a model's content and its data before anything is written or uploaded
(issue 25): each case breaks one part of a good import and must end in exit 1, one line naming the
reason, and no row, no audit record and no object in the service's store.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from sqlalchemy import func, select
from transformers import Qwen2Config, Qwen2ForCausalLM

from infra.db.models import AuditRecord, RegisteredModel
from infra.db.session import make_engine, make_sessionmaker
from infra.storage import open_store
from tests.cli.conftest import Grin

QA = json.dumps([{"question": "Who is Y?", "answer": "Somebody."}] * 3).encode()
OUTSIDE = "is not under an allowed intake root"


@dataclass
class Case:
    grin: Grin
    directory: Path
    tmp_path: Path

    def put(self, name: str, data: bytes) -> str:
        return open_store(self.grin.settings).put_bytes(f"inbox/{name}", data).uri

    def weights(self, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
        path = self.directory / "model.safetensors"
        tensors = load_file(path)
        change(tensors)
        save_file(tensors, path, metadata={"format": "pt"})

    def write(self, name: str, data: bytes) -> None:
        (self.directory / name).write_bytes(data)

    def outside(self, data: bytes) -> str:
        path = self.tmp_path / "elsewhere.json"
        path.write_bytes(data)
        return path.as_uri()


def _qwen2(directory: Path, tokenizer) -> Path:
    config = Qwen2Config(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _drop(name: str) -> Callable[[Case], list[str]]:
    def run(case: Case) -> list[str]:
        case.weights(lambda t: t.pop(name))
        return []

    return run


def _set(name: str, value: torch.Tensor) -> Callable[[Case], list[str]]:
    def run(case: Case) -> list[str]:
        case.weights(lambda t: t.__setitem__(name, value))
        return []

    return run


def _file(name: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Case], list[str]]:
    def run(case: Case) -> list[str]:
        old = (case.directory / name).read_bytes() if (case.directory / name).exists() else b""
        case.write(name, data(old) if callable(data) else data)
        return []

    return run


def _remove(*names: str) -> Callable[[Case], list[str]]:
    def run(case: Case) -> list[str]:
        for name in names:
            (case.directory / name).unlink()
        return []

    return run


def _flag(flag: str, make: Callable[[Case], str]) -> Callable[[Case], list[str]]:
    return lambda case: [flag, make(case)]


PICKLE = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."
SUITE_PARTS = "parts: retain, real_authors, world_facts, holdout, calibration"

CASES: list[tuple[str, Callable[[Case], list[str]], str]] = [
    # the model's weights
    (
        "a tensor missing from the weights",
        _drop("model.norm.weight"),
        "needs are not in the weights (model.norm.weight): loading would initialise them at random",
    ),
    ("the output layer missing (untied)", _drop("lm_head.weight"), "(lm_head.weight)"),
    (
        "a tensor the architecture has no place for",
        _set("model.extra.weight", torch.zeros(2)),
        "has no place for (model.extra.weight)",
    ),
    (
        "config and weights disagree on a shape",
        _set("model.norm.weight", torch.zeros(17)),
        "tensor model.norm.weight has shape [17] in the weights, [16] in the architecture",
    ),
    (
        "an integer tensor where a float one belongs",
        _set("model.norm.weight", torch.zeros(16, dtype=torch.int64)),
        "tensor model.norm.weight is stored as I64; the model needs a floating dtype",
    ),
    ("random bytes as model.safetensors", _file("model.safetensors", os.urandom(4096)), "model.safetensors: header of"),
    ("a truncated safetensors file", _file("model.safetensors", lambda b: b[:-100]), "truncated"),
    (
        "an oversized header length",
        _file("model.safetensors", lambda b: struct.pack("<Q", 2**40) + b[8:]),
        "model.safetensors: header of 1099511627776 bytes, more than the 100000000 allowed",
    ),
    ("a header that is not JSON", _file("model.safetensors", struct.pack("<Q", 4) + b"{{{{"), "header is not JSON"),
    (
        "offsets past the data",
        _file("model.safetensors", lambda b: b[:8] + b[8:].replace(b'"data_offsets":[0,', b'"data_offsets":[1,', 1)),
        "model.safetensors: tensor",
    ),
    (
        "a pickle named weights.dat beside the weights",
        _file("weights.dat", PICKLE),
        "weights.dat is a pickle; weights are accepted only as safetensors",
    ),
    ("a pickle named model.safetensors", _file("model.safetensors", PICKLE), "model.safetensors is a pickle"),
    ("a torch zip beside the weights", _file("extra.bin", b"PK\x03\x04rest"), "extra.bin holds pickle weights"),
    ("a config.json that is not JSON", _file("config.json", b"{not json"), "config.json is not JSON"),
    ("no config.json", _remove("config.json"), "no config.json"),
    ("no tokenizer files", _remove("tokenizer.json", "tokenizer_config.json"), "encodes text to nothing"),
    # the data it is imported with
    (
        "training manifest outside the roots",
        _flag("--training-manifest", lambda c: "file:///etc/passwd"),
        f"--training-manifest: 'file:///etc/passwd' {OUTSIDE}",
    ),
    ("holdout outside the roots", _flag("--holdout", lambda c: c.outside(QA)), "--holdout: 'file://"),
    ("retain outside the roots", _flag("--retain", lambda c: c.outside(QA)), OUTSIDE),
    (
        "eval suite outside the roots (a credentials file)",
        _flag("--eval-suite", lambda c: c.outside(b'{"aws_secret_access_key": "x"}')),
        "--eval-suite: 'file://",
    ),
    (
        "eval suite in the inbox that is a credentials file",
        _flag("--eval-suite", lambda c: c.put("creds.json", b'{"aws_secret_access_key": "x"}')),
        f"--eval-suite: unknown part 'aws_secret_access_key' ({SUITE_PARTS})",
    ),
    (
        "eval suite not an object",
        _flag("--eval-suite", lambda c: c.put("s.json", b"[1, 2]")),
        "--eval-suite: not a JSON object of QA sets",
    ),
    (
        "eval suite part not QA records",
        _flag("--eval-suite", lambda c: c.put("s.json", b'{"retain": [{"q": 1}]}')),
        "--eval-suite part retain: record 1 has no 'question' string",
    ),
    (
        "eval suite multiple choice without wrong answers",
        _flag("--eval-suite", lambda c: c.put("s.json", b'{"world_facts": [{"question": "q", "answer": "a"}]}')),
        "--eval-suite part world_facts: record 1 has no perturbed_answer list",
    ),
    (
        "eval suite not JSON",
        _flag("--eval-suite", lambda c: c.put("s.json", b"{")),
        "--eval-suite: the object: not JSON",
    ),
    (
        "training manifest not QA records",
        _flag("--training-manifest", lambda c: c.put("m.json", b'[{"text": "x"}]')),
        "--training-manifest: record 1 has no 'question' string",
    ),
    (
        "holdout not QA records",
        _flag("--holdout", lambda c: c.put("h.jsonl", b"root:x:0:0:root:/root:/bin/bash\n")),
        "--holdout: line 1: not JSON",
    ),
    (
        "training manifest missing",
        _flag("--training-manifest", lambda c: c.put("m.json", QA).replace("m.json", "none.json")),
        "no object at",
    ),
]


def _written(grin: Grin) -> tuple[int, int, list[str]]:
    engine = make_engine(grin.settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            rows = (
                session.scalar(select(func.count()).select_from(RegisteredModel)),
                session.scalar(select(func.count()).select_from(AuditRecord)),
            )
    finally:
        engine.dispose()
    return (*rows, [k for k in grin.objects() if not k.startswith("inbox/")])


def test_the_import_suite_names_at_least_twenty_five_kinds() -> None:
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize(("name", "make", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_import_is_refused_with_one_line_and_nothing_written_or_uploaded(
    grin: Grin, tiny_tokenizer, tmp_path: Path, name: str, make: Callable[[Case], list[str]], message: str
) -> None:
    directory = _qwen2(tmp_path / "model", tiny_tokenizer)
    args = make(Case(grin, directory, tmp_path))
    before = _written(grin)
    result = grin("model", "import", "user-qwen", str(directory), *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert _written(grin) == before


def test_a_bad_name_is_refused_before_anything_is_read_or_uploaded(grin: Grin, tiny_tokenizer, tmp_path: Path) -> None:
    directory = _qwen2(tmp_path / "model", tiny_tokenizer)
    result = grin("model", "import", "bad name!", str(directory), "--training-manifest", "file:///etc/passwd")
    assert result.exit_code == 1
    assert result.stderr == "error: model name 'bad name!' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$\n"
    assert grin.objects() == []


def test_good_data_from_the_inbox_imports_and_the_manifest_is_recorded_with_its_sha256(
    grin: Grin, tiny_tokenizer, tmp_path: Path
) -> None:
    import hashlib

    directory = _qwen2(tmp_path / "model", tiny_tokenizer)
    case = Case(grin, directory, tmp_path)
    suite = {
        "retain": [{"question": "q", "answer": "a"}],
        "world_facts": [{"question": "q", "answer": "a", "perturbed_answer": ["b", "c"]}],
    }
    imported = grin.json(
        "model",
        "import",
        "user-qwen",
        str(directory),
        "--training-manifest",
        case.put("m.json", QA),
        "--eval-suite",
        case.put("s.json", json.dumps(suite).encode()),
    )
    assert imported["manifest_records"] == 3 and imported["eval_suite_uri"].split("/suites/")[1].endswith(".json")
    engine = make_engine(grin.settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        from infra.db.models import ModelVersion

        version = session.scalar(select(ModelVersion))
        assert version.training_manifest_sha256 == hashlib.sha256(QA).hexdigest()
    engine.dispose()
