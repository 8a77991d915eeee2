"""The ladder's answer after a gated round: the next setting, whether it needs new scores, and when it stops."""

from __future__ import annotations

from policy.gate import GateCheck, GateDecision
from policy.gate_policy import GatePolicy
from policy.ladder import next_round
from policy.round_setting import RoundSetting

PASSED = GateDecision(passed=True, reason="passed", checks=[])


def _failing(metric: str) -> GateDecision:
    check = GateCheck(
        name=metric,
        metric=metric,
        value=1.0,
        limit=0.0,
        passed=False,
        detail=metric,
        asks="stronger" if metric.startswith("forget") else "weaker",
    )
    return GateDecision(passed=False, reason="failed", checks=[check])


def test_forgetting_too_little_asks_for_a_larger_p_and_new_scores():
    setting = RoundSetting(p_percent=1.0, epochs=8, learning_rate=3e-3, seed=5)
    nxt = next_round(GatePolicy(), [(setting, _failing("forget_rougeL"))])
    assert nxt is not None and nxt.rescore
    assert (nxt.setting.p_percent, nxt.setting.epochs) == (2.0, 12)
    assert nxt.setting.max_epochs == min(int(1.5 * setting.max_epochs + 0.999), GatePolicy().max_epochs)
    assert nxt.setting.seed == 5 and nxt.setting.method is setting.method  # only the ladder's fields move


def test_more_repair_keeps_the_mask():
    nxt = next_round(GatePolicy(), [(RoundSetting(alpha=2.0, learning_rate=4e-3), _failing("retain_rougeL"))])
    assert nxt is not None and not nxt.rescore
    assert (nxt.setting.alpha, nxt.setting.learning_rate) == (4.0, 4e-3)


def test_grun_forgetting_too_little_trains_longer_and_never_rescores():
    grun = RoundSetting.for_method("grun", epochs=8)
    nxt = next_round(GatePolicy(), [(grun, _failing("forget_rougeL"))])
    assert nxt is not None and not nxt.rescore
    assert nxt.setting.epochs == 12 and nxt.setting.p_percent == grun.p_percent  # it selects no weights


def test_no_next_round_after_a_pass_or_once_the_rounds_are_used_up():
    setting = RoundSetting()
    assert next_round(GatePolicy(), [(setting, PASSED)]) is None
    tried = [(setting, _failing("forget_rougeL"))] * 2
    assert next_round(GatePolicy(max_rounds=2), tried) is None
    assert next_round(GatePolicy(max_rounds=3), tried) is not None
