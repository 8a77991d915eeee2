import pytest

from policy.gate import GateCheck, GateDecision, decide
from policy.gate_policy import PROBE_NAMES, GatePolicy
from policy.ladder import next_setting
from policy.round_setting import RoundSetting

PARENT = {"forget_rougeL": 0.9, "retain_rougeL": 0.9, "forget_keyword_acc": 0.8, "model_utility": 0.5}
WAIVED = GatePolicy(privacy_waived=True)  # these cases test the utility and forget bounds alone


def test_a_candidate_that_forgets_and_keeps_utility_passes_with_every_check_named():
    after = {"forget_rougeL": 0.2, "retain_rougeL": 0.85, "forget_keyword_acc": 0.1, "model_utility": 0.48}
    decision = decide(WAIVED, PARENT, after)
    assert decision.passed
    assert {c.name for c in decision.checks} == {
        "forget_rougeL_abs",
        "forget_rougeL_rel",
        "retain_rougeL_rel",
        "forget_keyword_acc_abs",
        "forget_keyword_acc_rel",
        "model_utility_rel",
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
    decision = decide(
        WAIVED, {"forget_rougeL": 0.5, "retain_rougeL": 0.9}, {"forget_rougeL": 0.3, "retain_rougeL": 0.9}
    )
    assert not decision.passed and "forget ROUGE-L vs parent 0.3000 > 0.2500" in decision.reason


def test_unmeasured_required_metric_fails_and_optional_ones_are_skipped():
    decision = decide(WAIVED, {"retain_rougeL": 0.9}, {"retain_rougeL": 0.9})
    assert not decision.passed and "forget ROUGE-L was not measured" in decision.reason
    assert all("keyword" not in c.name and "utility" not in c.name for c in decision.checks)


def _failing(*metrics: str) -> GateDecision:
    checks = [
        GateCheck(
            name=m,
            metric=m,
            value=1.0,
            limit=0.0,
            passed=False,
            detail=m,
            asks="stronger" if m.startswith("forget") else "weaker",
        )
        for m in metrics
    ]
    return GateDecision(passed=False, reason="failed", checks=checks)


def test_ladder_strengthens_when_forgetting_falls_short_within_limits_then_stops():
    policy = GatePolicy(ladder_p_factor=2.0, ladder_epochs_factor=1.5, max_p_percent=3.0, max_epochs=15)
    failed = _failing("forget_rougeL", "retain_rougeL")
    rung = RoundSetting(p_percent=1.0, epochs=8, max_epochs=8, learning_rate=1e-2)
    rung = next_setting(policy, failed, rung)
    assert rung == RoundSetting(p_percent=2.0, epochs=12, max_epochs=12, learning_rate=1e-2)
    rung = next_setting(policy, failed, rung)
    assert rung == RoundSetting(p_percent=3.0, epochs=15, max_epochs=15, learning_rate=1e-2)
    assert next_setting(policy, failed, rung) is None


def test_ladder_repairs_more_when_only_retain_or_utility_suffer():
    # forgot enough, damaged what it keeps: a heavier retain term and a longer schedule, same rate and mask
    policy = GatePolicy(ladder_alpha_factor=2.0, ladder_epochs_factor=1.5, max_epochs=100)
    rung = RoundSetting(p_percent=0.5, epochs=8, max_epochs=40, alpha=1.0, learning_rate=1e-2)
    repaired = next_setting(policy, _failing("retain_rougeL", "model_utility"), rung)
    assert repaired == RoundSetting(p_percent=0.5, epochs=8, max_epochs=60, alpha=2.0, learning_rate=1e-2)
    again = next_setting(policy, _failing("model_utility"), repaired)
    assert (again.alpha, again.max_epochs) == (4.0, 90)


def test_ladder_slows_down_when_an_attack_says_over_unlearned():
    policy = GatePolicy(ladder_lr_factor=0.5, min_learning_rate=3e-3)
    rung = RoundSetting(p_percent=0.5, epochs=8, learning_rate=1e-2)
    low = GateDecision(
        passed=False,
        reason="failed",
        checks=[
            GateCheck(
                name="mia_mink_auc_low",
                metric="mia_mink_auc",
                value=0.3,
                limit=0.5,
                passed=False,
                detail="low",
                asks="weaker",
            )
        ],
    )
    gentler = next_setting(policy, low, rung)
    assert gentler == RoundSetting(p_percent=0.5, epochs=8, learning_rate=5e-3)
    assert next_setting(policy, low, gentler).learning_rate == 3e-3
    assert next_setting(policy, low, RoundSetting(p_percent=0.5, epochs=8, learning_rate=3e-3)) is None


def test_ladder_bisects_the_learning_rate_between_a_too_strong_and_a_too_weak_round():
    policy = GatePolicy(ladder_lr_factor=0.5)
    strong = RoundSetting(p_percent=2.0, epochs=8, learning_rate=4e-3)
    weak = RoundSetting(p_percent=2.0, epochs=8, learning_rate=2e-3)
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
    setting = RoundSetting(p_percent=2.0, epochs=8, max_epochs=40, learning_rate=3e-3)
    nxt = next_setting(policy, _failing("forget_rougeL"), setting, tried)
    assert nxt == RoundSetting(p_percent=4.0, epochs=12, max_epochs=60, learning_rate=3e-3)


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
    probes = {
        "forget_paraphrase_rougeL": 0.1,
        "forget_format_max_rougeL": 0.1,
        "forget_int8_rougeL": 0.1,
        "forget_int4_rougeL": 0.1,
        "forget_sampled_best_rougeL": 0.3,
        "relearn_forget_rougeL": 0.2,
    }
    after = {**GOOD, "mia_auc": 0.5, "forget_holdout_typical_prob_ratio": 1.2, **probes}
    assert decide(GatePolicy(), PARENT, after).passed
    for key in probes:
        decision = decide(GatePolicy(), PARENT, {**after, key: 0.95})
        (failed,) = [c for c in decision.checks if not c.passed]
        assert failed.metric == key and failed.asks == "stronger"
    decision = decide(GatePolicy(), PARENT, {**after, "forget_holdout_typical_prob_ratio": 100.0})
    assert [c.name for c in decision.checks if not c.passed] == ["forget_prob_vs_holdout"]


def test_every_attack_has_its_own_band_around_its_measured_level():
    after = {
        **GOOD,
        "mia_auc": 0.72,
        "nonmember_mia_auc": 0.70,
        "mia_zlib_auc": 0.75,
        "nonmember_mia_zlib_auc": 0.60,
        "mia_mink_auc": 0.40,
        "nonmember_mia_mink_auc": 0.65,
        "mia_minkpp_auc": 0.58,
        "nonmember_mia_minkpp_auc": 0.55,
    }
    decision = decide(GatePolicy(mia_auc_band=0.1), PARENT, after)
    failed = {c.name: c for c in decision.checks if not c.passed}
    assert set(failed) == {"mia_zlib_auc_high", "mia_mink_auc_low"}
    assert failed["mia_zlib_auc_high"].asks == "stronger" and failed["mia_zlib_auc_high"].limit == pytest.approx(0.7)
    assert failed["mia_mink_auc_low"].asks == "weaker" and failed["mia_mink_auc_low"].limit == pytest.approx(0.55)
    assert (
        "Min-K% attack AUC" in failed["mia_mink_auc_low"].detail and "never-seen" in failed["mia_mink_auc_low"].detail
    )


def test_a_line_may_check_fewer_attacks_and_never_an_unknown_one():
    after = {
        **GOOD,
        "mia_auc": 0.72,
        "nonmember_mia_auc": 0.70,
        "mia_minkpp_auc": 0.01,
        "nonmember_mia_minkpp_auc": 0.55,
    }
    assert not decide(GatePolicy(), PARENT, after).passed  # Min-K%++ far below its level
    loss_only = decide(GatePolicy(attacks=("loss",)), PARENT, after)
    assert loss_only.passed and not any("minkpp" in c.name for c in loss_only.checks)
    assert {"mia_auc_high", "mia_auc_low"} <= {c.name for c in loss_only.checks}
    for bad in ((), ("loss", "gap")):
        with pytest.raises(ValueError, match="attacks must be a non-empty subset"):
            GatePolicy(attacks=bad)


def test_a_line_names_the_probes_it_runs_from_the_known_ones():
    assert GatePolicy().probes == PROBE_NAMES and GatePolicy(probes=()).probes == ()
    with pytest.raises(ValueError, match="probes must be a subset"):
        GatePolicy(probes=("paraphrase", "relearn"))  # relearning has its own switch


def test_an_attack_without_a_measured_level_is_banded_around_one_half():
    decision = decide(GatePolicy(mia_reference_auc=0.7), PARENT, {**GOOD, "mia_auc": 0.7, "mia_minkpp_auc": 0.3})
    low = next(c for c in decision.checks if c.name == "mia_minkpp_auc_low")
    assert not low.passed and low.limit == pytest.approx(0.4) and "no calibration data" in low.detail
    assert next(c for c in decision.checks if c.name == "mia_auc_low").passed  # the line's level: 0.7


@pytest.mark.parametrize(("ratio", "nonmember", "limit"), [(2.5, None, 3.0), (3.5, None, 3.0), (5.0, 2.9, 5.8)])
def test_the_mean_probability_ratio_bound_is_the_policys_or_twice_the_never_seen_ratio(ratio, nonmember, limit):
    after = {**GOOD, "mia_auc": 0.5, "forget_holdout_prob_ratio": ratio}
    if nonmember is not None:
        after["nonmember_prob_ratio"] = nonmember
    check = next(c for c in decide(GatePolicy(), PARENT, after).checks if c.name == "forget_mean_prob_vs_holdout")
    assert check.limit == pytest.approx(limit) and check.passed == (ratio <= limit)


def test_relearning_is_bounded_by_never_seen_records_under_the_same_attack():
    after = {**GOOD, "mia_auc": 0.5, "relearn_forget_rougeL": 0.25, "relearn_nonmember_rougeL": 0.12}
    check = next(c for c in decide(GatePolicy(), PARENT, after).checks if c.name == "probe_relearn")
    assert check.limit == pytest.approx(0.22) and not check.passed and check.asks == "stronger"
    without = next(
        c
        for c in decide(GatePolicy(), PARENT, {**GOOD, "mia_auc": 0.5, "relearn_forget_rougeL": 0.25}).checks
        if c.name == "probe_relearn"
    )
    assert without.limit == pytest.approx(GatePolicy().relearn_rougeL_max) and without.passed


def test_the_relearning_probe_is_on_by_default():
    assert GatePolicy().relearn_probe is True
