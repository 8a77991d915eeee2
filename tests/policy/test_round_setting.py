"""A round's setting starts from its method's defaults; the ticket's overrides win."""

from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.unlearn_config import UnlearnConfig
from policy.gate import GateDecision
from policy.methods import Method
from policy.round_setting import RoundRecord, RoundSetting


def test_a_grun_round_takes_grun_s_schedule_and_a_grin_round_grin_s():
    grun, grin = RoundSetting.for_method("grun"), RoundSetting.for_method(Method.match)
    assert (grun.learning_rate, grun.max_epochs, grun.batch_size) == (
        GrunConfig.learning_rate,
        GrunConfig.max_epochs,
        GrunConfig.batch_size,
    )
    assert (grin.learning_rate, grin.max_epochs, grin.batch_size) == (
        UnlearnConfig.learning_rate,
        UnlearnConfig.max_epochs,
        UnlearnConfig.batch_size,
    )
    assert grun.grun_config() == GrunConfig()  # nothing lost on the way to grin_core
    assert RoundSetting.for_method("grun", learning_rate=1e-3, seed=7).grun_config().learning_rate == 1e-3
    assert grin.unlearn_config() == UnlearnConfig()


def test_a_grun_round_is_recorded_without_weight_selection_or_noise():
    grun, grin = RoundSetting.for_method("grun"), RoundSetting.for_method(Method.npo, p_percent=2.0)
    recorded = grun.model_dump(mode="json")
    assert recorded["method"] == "grun" and "p_percent" not in recorded and "sigma2" not in recorded
    assert RoundSetting(**recorded) == grun  # nothing the round used is lost
    assert grin.model_dump()["p_percent"] == 2.0 and "sigma2" in grin.model_dump()
    assert "weights by GRI" not in grun.describe() and "σ²" not in grun.describe()
    assert grin.describe().startswith("GRIN-NPO on the top 2% of weights by GRI")
    passed = GateDecision(passed=True, reason="passed", checks=[])
    assert RoundRecord.of(1, grun, passed).p_percent is None and RoundRecord.of(1, grin, passed).p_percent == 2.0


def test_a_ticket_s_overrides_their_bounds_the_help_and_the_caps_come_from_the_one_schema():
    import pytest
    from pydantic import ValidationError

    from policy.gate_policy import GatePolicy
    from policy.round_setting import LADDER_CAPS, OVERRIDABLE, RoundSettingOverrides, cap, overrides_help

    assert tuple(RoundSettingOverrides.model_fields) == OVERRIDABLE
    assert set(OVERRIDABLE) <= set(RoundSetting.model_fields)
    for name in OVERRIDABLE:  # same bounds and description as the setting's own field
        ours, theirs = RoundSettingOverrides.model_fields[name], RoundSetting.model_fields[name]
        assert (ours.metadata, ours.description, ours.default) == (theirs.metadata, theirs.description, None)
        assert name in overrides_help()
    for bad in ({"epochs": 10_001}, {"learning_rate": 2.0}, {"seed": -1}, {"batch_size": 4}, {"p_percent": 0}):
        with pytest.raises(ValidationError):
            RoundSettingOverrides(**bad)
    policy = GatePolicy(max_p_percent=7.0, max_epochs=50)
    assert {name: cap(policy, name) for name in LADDER_CAPS} == {"epochs": 50, "max_epochs": 50, "p_percent": 7.0}
