"""TOFU model utility: the harmonic mean of the retain-side numbers, so any collapse shows."""

from __future__ import annotations

from collections.abc import Mapping

from scipy.stats import hmean

UTILITY_PARTS = ("retain", "real_authors", "world_facts")
UTILITY_STATS = ("rougeL", "prob", "truth_ratio")
UTILITY_KEYS = tuple(f"{p}_{s}" for p in UTILITY_PARTS for s in UTILITY_STATS)


def model_utility(metrics: Mapping[str, float]) -> float | None:
    """Harmonic mean of the 9 numbers {retain, real_authors, world_facts} x {ROUGE-L, probability,
    truth-ratio stat}; None when any is missing. A zero among them gives 0."""
    if any(k not in metrics for k in UTILITY_KEYS):
        return None
    values = [float(metrics[k]) for k in UTILITY_KEYS]
    return 0.0 if min(values) <= 0 else float(hmean(values))
