"""The metric names the gate and the reports read, for the layers that never import grin_core (infra):
grin_core's constants (grin_core/metrics/names.py), and the rows a report shows first."""

from __future__ import annotations

from grin_core.metrics import names as m

check = m.check  # UnknownMetricError on a name no evaluation reports, with the known ones

# The metrics a reviewer reads first, in this order (the deletion report, and the Prefect metrics artifact).
HEADLINE_METRICS = tuple(
    check(name)
    for name in (
        m.FORGET_ROUGEL,
        m.FORGET_KEYWORD_ACC,
        m.FORGET_KEYWORD_CONF,
        m.FORGET_PROB,
        m.FORGET_TRUTH_RATIO,
        m.MIA_AUC,
        m.MIA_ZLIB_AUC,
        m.MIA_MINK_AUC,
        m.MIA_MINKPP_AUC,
        m.FORGET_HOLDOUT_PROB_RATIO,
        m.RELEARN_FORGET_ROUGEL,
        m.RETAIN_ROUGEL,
        m.RETAIN_PROB,
        m.MODEL_UTILITY,
    )
)
