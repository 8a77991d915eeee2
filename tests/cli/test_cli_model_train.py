"""`grin model train` refuses what it cannot train from, in one line, before anything is written or trained:
an unknown base line or version, a base that holds deleted data, a recipe key the run's recipe does not
have (a from-scratch key given with a base too), a value of the wrong type, a manifest outside the intake
roots or not QA. The runs that train are in tests/pipeline/test_finetune_line.py."""

from __future__ import annotations

import json

from sqlalchemy import select

from infra.db.models import ModelVersion
from infra.db.session import make_engine, make_sessionmaker
from infra.storage import open_store
from tests.cli.conftest import Grin


def _one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def test_an_unknown_base_a_bad_recipe_or_bad_data_is_refused_in_one_line_with_nothing_written(tofu: Grin):
    store = open_store(tofu.settings)
    manifest = store.put_bytes("inbox/train.json", json.dumps([{"question": "Q?", "answer": "A."}] * 3).encode())
    store.put_bytes("inbox/notqa.json", b'{"rows": 3}')
    outside = "file:///etc/passwd"
    train = ("model", "train", "tuned", "--manifest", manifest.uri)
    cases = {
        (*train, "--base", "nope@1"): "error: base nope@1: unknown model 'nope'",
        (*train, "--base", "tofu@9"): "error: base tofu@9: model 'tofu' has no version 9",
        (*train, "--base", "tofu@1", "--recipe", "lerning_rate=1e-4"): (
            "error: --recipe: unknown recipe key 'lerning_rate'; known keys: max_epochs, stop_loss, lr"
        ),
        (*train, "--base", "tofu@1", "--recipe", "vocab_size=300"): (  # a from-scratch key: a base has its tokenizer
            "error: --recipe: unknown recipe key 'vocab_size'"
        ),
        (*train, "--recipe", "weight_decay=0.1"): "error: --recipe: unknown recipe key 'weight_decay'",
        (*train, "--base", "tofu@1", "--recipe", "lr=fast"): "error: --recipe: recipe key 'lr': 'fast' is not float",
        (
            *train,
            "--base",
            "tofu@1",
            "--recipe",
            "max_epochs=0",
        ): "error: --recipe: max_epochs and batch_size must be >= 1",
        (*train, "--recipe", "epochs"): "error: --recipe: recipe entry 'epochs' is not key=value",
        ("model", "train", "bad name!", "--manifest", manifest.uri): "error: model name 'bad name!' must match",
        ("model", "train", "tuned", "--base", "tofu@1", "--manifest", outside): "error: --manifest: ",
        ("model", "train", "tuned", "--base", "tofu@1", "--manifest", store.uri("inbox/notqa.json")): (
            "error: --manifest"
        ),
    }
    before = sorted(tofu.objects())
    for args, message in cases.items():
        line = _one_line(tofu(*args))
        assert line.startswith(message), (args, line)

    engine = make_engine(tofu.settings.database_url)
    with make_sessionmaker(engine).begin() as session:  # the line's row would come first: still only tofu@1
        assert [(v.model.name, v.version) for v in session.scalars(select(ModelVersion))] == [("tofu", 1)]
    engine.dispose()
    assert [m["name"] for m in tofu.json("model", "list")] == ["tofu"]
    assert sorted(tofu.objects()) == before  # no suite, no checkpoint


def test_a_base_holding_deleted_data_is_refused(tofu: Grin):
    from infra import registry

    engine = make_engine(tofu.settings.database_url)
    with make_sessionmaker(engine).begin() as session:  # as after a later version answered ticket 7
        registry.resolve("tofu@1", session=session).holds_deleted_data_of = [7]
    engine.dispose()
    manifest = open_store(tofu.settings).put_bytes("inbox/train.json", b'[{"question": "Q?", "answer": "A."}]')
    result = tofu("model", "train", "tuned", "--base", "tofu@1", "--manifest", manifest.uri)
    assert _one_line(result).startswith("error: base tofu@1 holds data deleted by tickets [7]")
