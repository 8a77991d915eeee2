import pytest

from policy.gate import GateCheck, GateDecision, decide
from policy.gate_policy import GatePolicy
from policy.ladder import next_setting
from policy.round_setting import RoundSetting

PARENT = {"forget_rougeL": 0.9, "retain_rougeL": 0.9, "forget_keyword_acc": 0.8, "model_utility": 0.5}
WAIVED = GatePolicy(privacy_waived=True)  # these cases test the utility and forget bounds alone


def test_a_candidate_that_forgets_and_keeps_utility_passes_with_every_check_named():
    after = {"forget_rougeL": 0.2, "retain_rougeL": 0.85, "forget_keyword_acc": 0.1, "model_utility": 0.48}
    decision = decide(WAIVED, PARENT, after)
    assert decision.passed
    assert {c.name for c in decision.checks} == {
        "forget_rougeL_abs", "forget_rougeL_rel", "retain_rougeL_rel",
        "forget_keyword_acc_abs", "forget_keyword_acc_rel", "model_utility_rel",
    }
    assert decision.reason.startswith("passed: forget ROUGE-L 0.2000 ≤ 0.4000")


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"forget_rougeL": 0.5}, {"forget_rougeL_abs", "forget_rougeL_rel"}),  # 0.5 > 0.4 and > 0.45
        ({"retain_rougeL": 0.7}, {"retain_rougeL_rel"}),  # 0.7 < 0.9 * 0.9
        ({"forget_keyword_acc": 0.35}, {"forget_keyword_acc_abs"}),  # > 0.3 but < 0.5 * 0.8
        ({"model_utility": 0.4}, {"model_utility_rel"}),  # < 0.9 * 0.5
    ],
)
def test_each_threshold_fails_on_its_own(change, failing):
    after = {"forget_rougeL": 0.2, "retain_rougeL": 0.85, "forget_keyword_acc": 0.1, "model_utility": 0.48, **change}
    decision = decide(WAIVED, PARENT, after)
    assert not decision.passed
    assert {c.name for c in decision.checks if not c.passed} == failing
    assert decision.reason.startswith("failed: ")


def test_relative_bound_is_tighter_than_absolute_for_a_weakly_memorised_parent():
    decision = decide(WAIVED, {"forget_rougeL": 0.5, "retain_rougeL": 0.9}, {"forget_rougeL": 0.3, "retain_rougeL": 0.9})
    assert not decision.passed and "forget ROUGE-L vs parent 0.3000 > 0.2500" in decision.reason


def test_unmeasured_required_metric_fails_and_optional_ones_are_skipped():
    decision = decide(WAIVED, {"retain_rougeL": 0.9}, {"retain_rougeL": 0.9})
    assert not decision.passed and "forget ROUGE-L was not measured" in decision.reason
    assert all("keyword" not in c.name and "utility" not in c.name for c in decision.checks)


def _failing(*metrics: str) -> GateDecision:
    checks = [GateCheck(name=m, metric=m, value=1.0, limit=0.0, passed=False, detail=m,
                        asks="stronger" if m.startswith("forget") else "weaker") for m in metrics]
    return GateDecision(passed=False, reason="failed", checks=checks)


def test_ladder_strengthens_when_forgetting_falls_short_within_limits_then_stops():
    policy = GatePolicy(ladder_p_factor=2.0, ladder_epochs_factor=1.5, max_p_percent=3.0, max_epochs=15)
    failed = _failing("forget_rougeL", "retain_rougeL")
    rung = RoundSetting(p_percent=1.0, epochs=8, learning_rate=1e-2)
    rung = next_setting(policy, failed, rung)
    assert rung == RoundSetting(p_percent=2.0, epochs=12, learning_rate=1e-2)
    rung = next_setting(policy, failed, rung)
    assert rung == RoundSetting(p_percent=3.0, epochs=15, learning_rate=1e-2)
    assert next_setting(policy, failed, rung) is None


def test_ladder_softens_when_only_retain_or_utility_suffer():
    policy = GatePolicy(ladder_lr_factor=0.5, min_learning_rate=3e-3)
    rung = RoundSetting(p_percent=0.5, epochs=8, learning_rate=1e-2)
    gentler = next_setting(policy, _failing("retain_rougeL", "model_utility"), rung)
    assert gentler == RoundSetting(p_percent=0.5, epochs=8, learning_rate=5e-3)
    assert next_setting(policy, _failing("model_utility"), gentler).learning_rate == 3e-3
    assert next_setting(policy, _failing("model_utility"), RoundSetting(p_percent=0.5, epochs=8, learning_rate=3e-3)) is None


def test_ladder_bisects_the_learning_rate_between_a_too_strong_and_a_too_weak_round():
    policy = GatePolicy(ladder_lr_factor=0.5)
    strong = RoundSetting(p_percent=2.0, epochs=8, learning_rate=4e-3)
    weak = next_setting(policy, _failing("retain_rougeL"), strong)
    assert weak == RoundSetting(p_percent=2.0, epochs=8, learning_rate=2e-3)
    tried = [(strong, _failing("retain_rougeL"))]
    between = next_setting(policy, _failing("forget_rougeL"), weak, tried)
    assert between.p_percent == 2.0 and between.epochs == 8
    assert between.learning_rate == pytest.approx((4e-3 * 2e-3) ** 0.5)
    # too strong again: bisect towards the nearer too-weak rung, never back to a tried rate
    tried.append((weak, _failing("forget_rougeL")))
    again = next_setting(policy, _failing("model_utility"), between, tried)
    assert again.learning_rate == pytest.approx((between.learning_rate * 2e-3) ** 0.5)
    assert 2e-3 < again.learning_rate < between.learning_rate


def test_ladder_escalates_when_the_opposite_failure_was_at_another_p():
    policy = GatePolicy(ladder_p_factor=2.0, ladder_epochs_factor=1.5)
    tried = [(RoundSetting(p_percent=1.0, epochs=8, learning_rate=3e-3), _failing("retain_rougeL"))]
    nxt = next_setting(policy, _failing("forget_rougeL"), RoundSetting(p_percent=2.0, epochs=8, learning_rate=3e-3), tried)
    assert nxt == RoundSetting(p_percent=4.0, epochs=12, learning_rate=3e-3)


GOOD = {"forget_rougeL": 0.1, "retain_rougeL": 0.88, "model_utility": 0.49, "forget_keyword_acc": 0.1}


@pytest.mark.parametrize(
    ("auc", "failing", "asks"),
    [
        (0.72, set(), None),  # inside 0.7 ± 0.1
        (0.85, {"mia_auc_high"}, "stronger"),  # still recognised
        (0.55, {"mia_auc_low"}, "weaker"),  # over-unlearned: forget rows less likely than unseen ones
    ],
)
def test_mia_band_around_the_calibrated_non_member_level_has_two_edges(auc, failing, asks):
    policy = GatePolicy(mia_reference_auc=0.7, mia_auc_band=0.1)
    decision = decide(policy, PARENT, {**GOOD, "mia_auc": auc})
    assert {c.name for c in decision.checks if not c.passed} == failing
    assert {c.asks for c in decision.checks if not c.passed} == ({asks} if asks else set())


def test_without_a_reference_the_non_member_level_is_one_half():
    decision = decide(GatePolicy(), PARENT, {**GOOD, "mia_auc": 0.65})
    high = next(c for c in decision.checks if c.name == "mia_auc_high")
    assert high.limit == pytest.approx(0.6) and not high.passed


def test_no_holdout_means_privacy_not_checked_and_no_retry_unless_waived():
    decision = decide(GatePolicy(), PARENT, GOOD)
    assert not decision.passed and "privacy not checked" in decision.reason
    assert next_setting(GatePolicy(), decision, RoundSetting(p_percent=2.0, epochs=8, learning_rate=3e-3)) is None
    assert decide(GatePolicy(privacy_waived=True), PARENT, GOOD).passed


def test_each_probe_fails_by_name_and_asks_for_stronger_unlearning():
    probes = {"forget_paraphrase_rougeL": 0.1, "forget_format_max_rougeL": 0.1, "forget_int8_rougeL": 0.1,
              "forget_int4_rougeL": 0.1, "forget_sampled_best_rougeL": 0.3, "relearn_forget_rougeL": 0.2}
    after = {**GOOD, "mia_auc": 0.5, "forget_holdout_typical_prob_ratio": 1.2, **probes}
    assert decide(GatePolicy(), PARENT, after).passed
    for key in probes:
        decision = decide(GatePolicy(), PARENT, {**after, key: 0.95})
        (failed,) = [c for c in decision.checks if not c.passed]
        assert failed.metric == key and failed.asks == "stronger"
    decision = decide(GatePolicy(), PARENT, {**after, "forget_holdout_typical_prob_ratio": 100.0})
    assert [c.name for c in decision.checks if not c.passed] == ["forget_prob_vs_holdout"]
