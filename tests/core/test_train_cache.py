"""train_or_load trains once per key and records how the run ended; the cache survives a lost race."""

from dataclasses import replace
from pathlib import Path

import pytest

from grin_core.models import train
from grin_core.models.cache import cached_dir, content_key
from grin_core.models.checkpoint import load_checkpoint, load_grin_config, verify_checkpoint
from grin_core.models.fit import BUDGET, STOP_LOSS, stopped_by, training_run
from grin_core.models.tiny_llama import TinyLlamaConfig

RECORDS = [{"question": f"What is item {i}?", "answer": f"Item {i} is number {i}."} for i in range(8)]
CONFIG = TinyLlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
TRAIN = train.TrainConfig(max_epochs=2, batch_size=4, warmup_steps=0, vocab_size=300, stop_loss=None)


def test_train_or_load_hits_cache(tmp_path, monkeypatch):
    first = train.train_or_load(RECORDS, CONFIG, TRAIN, tmp_path, progress=False)
    verify_checkpoint(first)
    assert [h["epoch"] for h in train.training_history(first)] == [1, 2]
    run = training_run(first)  # no stop loss: the budget ended it, and the whole recipe is recorded
    assert (run.epochs, run.stopped_by, run.recipe) == (2, BUDGET, TRAIN.to_dict())
    assert run.final_loss == train.training_history(first)[-1]["loss"]

    def no_training(*args, **kwargs):
        raise AssertionError("a warm cache must not retrain")

    monkeypatch.setattr(train, "train_model", no_training)
    assert train.train_or_load(RECORDS, CONFIG, TRAIN, tmp_path, progress=False) == first
    with pytest.raises(AssertionError):  # another data hash is another key
        train.train_or_load(RECORDS[:4], CONFIG, TRAIN, tmp_path, progress=False)
    model, tokenizer = load_checkpoint(first)
    assert model.config.hidden_size == 32 and len(tokenizer) <= 300
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_a_run_says_whether_its_stop_loss_or_its_budget_ended_it(tmp_path):
    # any loss is below 1e6: the first epoch ends the run; no loss is below 1e-9 within 2 epochs
    stopped = train.train_or_load(RECORDS, CONFIG, replace(TRAIN, stop_loss=1e6), tmp_path, progress=False)
    assert (training_run(stopped).epochs, training_run(stopped).stopped_by) == (1, STOP_LOSS)
    budget = train.train_or_load(RECORDS, CONFIG, replace(TRAIN, stop_loss=1e-9), tmp_path, progress=False)
    assert (training_run(budget).epochs, training_run(budget).stopped_by) == (2, BUDGET)
    assert load_grin_config(budget)["stopped_by"] == BUDGET
    assert stopped_by([{"loss": 0.04}], 0.05) == STOP_LOSS and stopped_by([], 0.05) == BUDGET


def test_cached_dir_lost_race_uses_winner(tmp_path):
    key = content_key("race")

    def build(directory: Path) -> None:  # another process finishes first, then we try to rename
        (tmp_path / key).mkdir()
        (tmp_path / key / "winner").write_text("1")
        (directory / "loser").write_text("1")

    path, hit = cached_dir(tmp_path, key, build)
    assert not hit and (path / "winner").exists() and not (path / "loser").exists()
    assert cached_dir(tmp_path, key, build) == (path, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]


def test_content_key_ignores_dict_order():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1}) != content_key({"a": 2})


def test_a_second_process_waits_for_the_entry_being_built_instead_of_building_it_again(tmp_path):
    import threading
    import time

    from grin_core.models.cache import cached_dir

    builds = []

    def build(directory):
        builds.append(directory)
        time.sleep(0.5)  # long enough for the second caller to arrive while this one builds
        (directory / "weights").write_text("built once")

    results = []
    callers = [threading.Thread(target=lambda: results.append(cached_dir(tmp_path, "k", build))) for _ in range(2)]
    for caller in callers:
        caller.start()
        time.sleep(0.1)
    for caller in callers:
        caller.join()
    assert len(builds) == 1 and sorted(hit for _, hit in results) == [False, True]
    assert (tmp_path / "k" / "weights").read_text() == "built once"
