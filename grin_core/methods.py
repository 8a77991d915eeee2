"""The unlearning methods a ticket may ask for, named once for every layer (no torch here).

GRIN fine-tunes the selected weights with one of its objectives; GRUN trains a gated intervention
and leaves every base weight untouched (grun.py).
"""

from __future__ import annotations

from enum import StrEnum


class Method(StrEnum):
    """GRIN objectives on selected weights, and GRUN (a gated intervention; base weights untouched)."""

    npo = "npo"
    graddiff = "graddiff"
    po = "po"
    grun = "grun"


# The objectives GRIN fine-tunes selected weights with (and the benchmark's full-parameter baselines).
GRIN_OBJECTIVES = tuple(m.value for m in Method if m is not Method.grun)
# What UnlearnConfig.method takes: the GRIN objectives and SimNPO, a library option the service does not offer.
OBJECTIVES = (*GRIN_OBJECTIVES, "simnpo")
# GRUN's unlearning term (grun_train.py): NPO or gradient difference.
GRUN_OBJECTIVES = tuple(m for m in GRIN_OBJECTIVES if m != Method.po)
