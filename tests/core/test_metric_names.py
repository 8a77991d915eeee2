"""Metric names are constants: the evaluator writes only known names, the probes' defaults are known,
and an unknown name raises with the known ones."""

import pytest

from grin_core.metrics import names
from tests.core.test_probes import PROBE_KEYS


def test_an_unknown_metric_raises_with_the_known_ones():
    assert names.check(names.MIA_AUC) == "mia_auc"
    with pytest.raises(names.UnknownMetricError, match="unknown metric 'mia_acu'; known: .*mia_auc"):
        names.check("mia_acu")


def test_the_probes_default_keys_and_the_gate_and_report_names_are_known():
    from policy.gate_checks.probes import PROBES
    from policy.metric_names import HEADLINE_METRICS

    assert PROBE_KEYS | set(PROBES) | set(HEADLINE_METRICS) <= names.METRICS
    relearn = {
        names.RELEARN_FORGET_ROUGEL,
        names.RELEARN_FORGET_PROB,
        names.RELEARN_BEFORE_FORGET_ROUGEL,
        names.RELEARN_BEFORE_FORGET_PROB,
    }
    assert relearn <= names.METRICS


def test_a_gate_check_on_an_unknown_metric_raises():
    from policy.gate_check import bound_check

    with pytest.raises(names.UnknownMetricError):
        bound_check("typo", "forget_rouge", 0.1, 0.4, "forget ROUGE-L", at_most=True)
