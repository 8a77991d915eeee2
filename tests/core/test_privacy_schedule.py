"""The privacy schedule on a tiny random Llama: which phase each epoch trains, when it stops, and
that `steer=False` only observes."""

import pytest

from grin_core.unlearning.privacy_schedule import PUSH, REPAIR, PrivacySchedule
from grin_core.unlearning.unlearn import unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN, TINY

HOLDOUT = [
    {"question": f"Which river runs through town {i}?", "answer": f"The Vell river runs through town {i}."}
    for i in range(8)
]


def test_observing_only_pushes_every_epoch_and_records_a_probe_per_epoch(tiny_model_factory, tiny_tokenizer):
    config = UnlearnConfig(p_percent=1.0, **{**TINY, "epochs": 3})
    result = unlearn(
        tiny_model_factory(0),
        tiny_tokenizer,
        FORGET,
        RETAIN,
        config,
        holdout_records=HOLDOUT,
        target_auc=0.5,
        steer=False,
    )
    assert [p["epoch"] for p in result.probes] == [0.0, 1.0, 2.0, 3.0]
    assert {p["phase"] for p in result.probes} == {PUSH}
    assert all(0.0 <= p["mia_auc"] <= 1.0 and 0.0 < p["forget_prob"] <= 1.0 for p in result.probes)
    assert result.summary()["probes"] == result.probes


def test_a_forget_set_already_in_band_is_only_repaired_and_training_stops_early(tiny_model_factory, tiny_tokenizer):
    config = UnlearnConfig(p_percent=1.0, auc_margin=0.2, retain_recovery=0.0, max_epochs=5, **TINY)
    model = tiny_model_factory(0)
    result = unlearn(
        model,
        tiny_tokenizer,
        FORGET,
        RETAIN,
        config,
        holdout_records=HOLDOUT,
        target_auc=result_auc(model, tiny_tokenizer),
    )
    assert [p["phase"] for p in result.probes[1:]] == [REPAIR]  # one repair epoch, then done
    assert not any("forget_logp" in entry for entry in result.history)  # the objective never ran


def result_auc(model, tokenizer) -> float:
    """The untouched model's own AUC, so the schedule starts inside its band."""

    class Probe:
        phase = PUSH

    return PrivacySchedule(Probe(), tokenizer, FORGET, HOLDOUT, target_auc=0.5, margin=0.1, retain_recovery=1.0).probe(
        model, 0
    )["mia_auc"]


def test_phase_rules_push_above_the_band_and_repair_with_hysteresis():
    class Trainer:
        phase = PUSH

    schedule = PrivacySchedule(
        Trainer(), None, FORGET, HOLDOUT, target_auc=0.6, margin=0.05, retain_recovery=0.9, push_control="full"
    )
    assert schedule._next_phase(0.66, PUSH) == PUSH
    assert schedule._next_phase(0.64, PUSH) == REPAIR
    assert schedule._next_phase(0.68, REPAIR) == REPAIR  # inside target + 2 x margin: keep repairing
    assert schedule._next_phase(0.71, REPAIR) == PUSH
    assert schedule._next_phase(0.30, PUSH) == REPAIR  # over-unlearned: never push further


def test_pushes_after_the_band_was_reached_run_at_the_reduced_rate_and_repairs_at_the_full_one():
    class Scheduler:
        def __init__(self) -> None:
            self.base_lrs = [1e-2]
            self.optimizer = type("Optimizer", (), {"param_groups": [{"lr": 1e-2}]})()

    class Trainer:
        phase = PUSH
        lr_scheduler = Scheduler()

    trainer = Trainer()
    schedule = PrivacySchedule(
        trainer,
        None,
        FORGET,
        HOLDOUT,
        target_auc=0.6,
        margin=0.05,
        retain_recovery=0.9,
        push_control="full",
        repush_lr_factor=0.3,
    )
    schedule._scale_learning_rate(0.3)
    assert trainer.lr_scheduler.base_lrs == [0.003] and trainer.lr_scheduler.optimizer.param_groups[0]["lr"] == 0.003
    schedule._scale_learning_rate(1.0)
    assert trainer.lr_scheduler.base_lrs == [1e-2]  # scaled from the original, never compounded


def test_proportional_control_weighs_the_forget_term_by_the_remaining_gap_and_repairs_at_or_below_target():
    class Trainer:
        phase, forget_weight, retain_weight = PUSH, 1.0, 1.0

    trainer = Trainer()
    schedule = PrivacySchedule(
        trainer, None, FORGET, HOLDOUT, target_auc=0.6, margin=0.05, retain_recovery=0.9, push_control="proportional"
    )
    schedule.history = [{"mia_auc": 1.0}]  # epoch 0: the gap to close is 0.4
    for auc, weight, phase in [
        (1.0, 1.0, PUSH),
        (0.8, 0.5, PUSH),
        (0.7, 0.25, PUSH),
        (0.6, 0.0, REPAIR),
        (0.3, 0.0, REPAIR),
    ]:
        entry = {"mia_auc": auc}
        schedule._steer_weights(entry)
        assert trainer.forget_weight == pytest.approx(weight) and trainer.phase == phase
        assert entry["forget_weight"] == pytest.approx(weight)  # recorded in the probe history


def test_retain_weight_doubles_while_retain_is_below_recovery_and_halves_back_to_alpha():
    class Trainer:
        phase, forget_weight, retain_weight = PUSH, 1.0, 1.0

    trainer = Trainer()
    schedule = PrivacySchedule(
        trainer,
        None,
        FORGET,
        HOLDOUT,
        target_auc=0.6,
        margin=0.05,
        retain_recovery=0.9,
        push_control="full",
        alpha=1.0,
        alpha_max=4.0,
    )
    schedule.retain_start = 1.0
    weights = []
    for retain in (0.95, 0.8, 0.8, 0.8, 0.8, 0.95, 0.95, 0.95):
        schedule._steer_weights({"mia_auc": 0.9, "retain_prob": retain})
        weights.append(trainer.retain_weight)
    assert weights == [1.0, 2.0, 4.0, 4.0, 4.0, 2.0, 1.0, 1.0]
    assert trainer.forget_weight == 1.0  # full push control leaves the forget term alone
