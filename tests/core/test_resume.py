"""Resume: a run killed after an epoch's progress checkpoint and resumed from it ends where an
uninterrupted run ends (same seed): weights, privacy-schedule probes and loss history."""

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from grin_core.unlearning.resume import ResumeMismatchError
from grin_core.unlearning.unlearn import score_and_select, unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN

HOLDOUT = [
    {
        "question": f"What is the title of book {i} by Ilse Varga?",
        "answer": f"Her book {i} is called The Copper Meadow, part {i}.",
    }
    for i in range(8)
]
CONFIG = UnlearnConfig(
    method="npo",
    stop_rule="loss",
    p_percent=5.0,
    epochs=4,
    max_epochs=6,
    batch_size=4,
    retain_batch_size=4,
    learning_rate=1e-2,
    scoring_batch_size=8,
)
TOLERANCE = 1e-6  # on CPU the resumed run is bit-identical; the bound leaves room for other kernels


class Killed(Exception):
    pass


class KillAfterSave(TrainerCallback):
    """Raises once the checkpoint of epoch `epoch` is written: the run dies between two epochs."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_save(self, args, state, control, **kwargs):
        if round(state.epoch) == self.epoch:
            raise Killed


def _run(model, tokenizer, mask, tmp: Path, *, holdout, callbacks=(), resume_from=None, fingerprint="run-a"):
    return unlearn(
        model,
        tokenizer,
        FORGET,
        RETAIN,
        CONFIG,
        mask=mask,
        callbacks=callbacks,
        holdout_records=holdout,
        target_auc=0.5,
        checkpoint_dir=str(tmp),
        checkpoint_every_s=0,
        resume_from=resume_from,
        fingerprint=fingerprint,
    )


def _latest(tmp: Path) -> str:
    (checkpoint,) = tmp.glob("checkpoint-*")  # the newest only (save_total_limit=1)
    return str(checkpoint)


@pytest.mark.parametrize("scheduled", [False, True], ids=["fixed-epochs", "privacy-schedule"])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tiny_model_factory, tiny_tokenizer, tmp_path, scheduled):
    holdout = HOLDOUT if scheduled else None
    mask = score_and_select(tiny_model_factory(0), tiny_tokenizer, FORGET, RETAIN, CONFIG)
    whole = _run(tiny_model_factory(0), tiny_tokenizer, mask, tmp_path / "whole", holdout=holdout)

    with pytest.raises(Killed):
        _run(
            tiny_model_factory(0),
            tiny_tokenizer,
            mask,
            tmp_path / "killed",
            holdout=holdout,
            callbacks=[KillAfterSave(epoch=2)],
        )
    resumed = _run(
        tiny_model_factory(0),
        tiny_tokenizer,
        mask,
        tmp_path / "resumed",
        holdout=holdout,
        resume_from=_latest(tmp_path / "killed"),
    )

    worst = max(
        (a - b).abs().max().item()
        for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values(), strict=True)
    )
    assert worst <= TOLERANCE
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in whole.history], abs=1e-6)
    assert len(resumed.history) == len(whole.history)
    assert resumed.probes == whole.probes
    # and it did resume: the killed run's two epochs were not trained again
    assert [h["epoch"] for h in resumed.history][:2] == [1.0, 2.0]


def test_a_checkpoint_of_another_run_is_refused(tiny_model_factory, tiny_tokenizer, tmp_path):
    mask = score_and_select(tiny_model_factory(0), tiny_tokenizer, FORGET, RETAIN, CONFIG)
    with pytest.raises(Killed):
        _run(
            tiny_model_factory(0),
            tiny_tokenizer,
            mask,
            tmp_path / "a",
            holdout=None,
            callbacks=[KillAfterSave(epoch=1)],
        )
    model = tiny_model_factory(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ResumeMismatchError):
        _run(
            model,
            tiny_tokenizer,
            mask,
            tmp_path / "b",
            holdout=None,
            resume_from=_latest(tmp_path / "a"),
            fingerprint="another-run",
        )
    # the weights outside the mask are back as they were (noise in the mask is all that happened)
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k]) and k not in mask.tensors]
    assert moved == []


def test_progress_is_saved_only_once_the_interval_has_passed(tiny_model_factory, tiny_tokenizer, tmp_path):
    mask = score_and_select(tiny_model_factory(0), tiny_tokenizer, FORGET, RETAIN, CONFIG)
    unlearn(
        tiny_model_factory(0),
        tiny_tokenizer,
        FORGET,
        RETAIN,
        CONFIG,
        mask=mask,
        checkpoint_dir=str(tmp_path / "hourly"),
        checkpoint_every_s=3600,
    )
    unlearn(
        tiny_model_factory(0),
        tiny_tokenizer,
        FORGET,
        RETAIN,
        CONFIG,
        mask=mask,
        checkpoint_dir=str(tmp_path / "always"),
        checkpoint_every_s=0,
    )
    assert list((tmp_path / "hourly").glob("checkpoint-*")) == []
    # every epoch but the last (a save where training stops would never be resumed)
    assert [p.name for p in (tmp_path / "always").glob("checkpoint-*")] == ["checkpoint-6"]
