"""A round's setting starts from its method's defaults; the ticket's overrides win."""

from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.unlearn_config import UnlearnConfig
from policy.gate import GateDecision
from policy.methods import Method
from policy.round_setting import RoundRecord, RoundSetting


def test_a_grun_round_takes_grun_s_schedule_and_a_grin_round_grin_s():
    grun, grin = RoundSetting.for_method("grun"), RoundSetting.for_method(Method.npo)
    assert (grun.learning_rate, grun.max_epochs, grun.batch_size) == (
        GrunConfig.learning_rate, GrunConfig.max_epochs, GrunConfig.batch_size)
    assert (grin.learning_rate, grin.max_epochs, grin.batch_size) == (
        UnlearnConfig.learning_rate, UnlearnConfig.max_epochs, UnlearnConfig.batch_size)
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
