"""The unlearning methods, named once for every layer (no torch here).

GRIN fine-tunes the selected weights with one of its objectives; GRUN trains a gated intervention
and leaves every base weight untouched (grun.py). The service's `policy.methods.Method` (what a
ticket may ask for) is built from these names. The library runs any objective of
`objective_registry.OBJECTIVES` (SimNPO too, which the service does not offer).
"""

from __future__ import annotations

# The objectives GRIN fine-tunes selected weights with (and the benchmark's full-parameter baselines).
GRIN_OBJECTIVES = ("npo", "graddiff", "po")
GRUN = "grun"  # the gated representation intervention (grun.py, grun_train.py)
# GRUN's unlearning term (grun_train.py): NPO or gradient difference.
GRUN_OBJECTIVES = tuple(m for m in GRIN_OBJECTIVES if m != "po")
