"""The methods a ticket may ask for: GRIN with one of grin_core's objectives on selected weights, or
GRUN (a gated intervention; base weights untouched). Built from grin_core's names (grin_core/unlearning/methods.py),
so the ticket column, intake, the registry and a round's setting name the same methods grin_core runs.
"""

from __future__ import annotations

from enum import StrEnum

from grin_core.unlearning.methods import GRIN_OBJECTIVES, GRUN

Method = StrEnum("Method", [(name, name) for name in (*GRIN_OBJECTIVES, GRUN)], module=__name__)


def methods_help() -> str:
    """What `--method` of `grin ticket file` takes, from the names above."""
    grin = [m.value for m in Method if m.value != GRUN]
    return (
        f"{', '.join(grin[:-1])} or {grin[-1]} (GRIN: fine-tunes selected weights; {grin[0]} by default), "
        f"or {GRUN} (a gated intervention; base weights unchanged)."
    )
