"""The report's summaries of one benchmark run: where it ran, how GRIN methods were steered, the
seeds' mean and std, the acceptance checks and the headline ratios."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.tofu_config import BenchConfig


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        model_name = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                          if line.startswith("model name"))
        info["cpu_model"] = model_name.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def schedule_settings(config: BenchConfig) -> dict:
    """How GRIN methods were steered: on or off, the epoch budgets and every privacy-schedule field
    of UnlearnConfig (whichever it has: `auc_margin`, `retain_recovery`, ...)."""
    from dataclasses import fields

    grin = config.method_config("grin-npo")
    schedule_fields = {f.name for f in fields(grin)} & {"auc_margin", "retain_recovery"}
    return {"grin": config.schedule, "grin_epochs": grin.max_epochs if config.schedule else grin.epochs,
            "full_parameter_epochs": config.method_config("npo").epochs,
            **{name: getattr(grin, name) for name in sorted(schedule_fields)}}


SEED_TIMES = ("wall_s", "scoring_s", "fwd_bwd_s", "scoring_over_fwd_bwd", "epochs_run", "probes_s", "eval_s")


def _numbers(entry: Mapping) -> dict[str, float]:
    """Every number of a run that is averaged over seeds: metrics, robustness and the times."""
    values = {k: entry.get(k) for k in SEED_TIMES}
    for part in ("metrics", "robustness"):
        values.update(entry.get(part) or {})
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def aggregate_seeds(runs: Sequence[dict]) -> dict:
    """One method's entry over seeds: seed 0's entry (config, mask, state, curves) with `metrics`,
    `robustness` and the times replaced by their means over seeds; `seeds` (every run), `mean`
    and `std` (sample standard deviation; 0 for one seed) of every number."""
    from statistics import fmean, stdev

    numbers = [_numbers(run) for run in runs]
    keys = list(dict.fromkeys(k for n in numbers for k in n))
    mean, std = {}, {}
    for key in keys:
        values = [n[key] for n in numbers if key in n]
        mean[key] = fmean(values)
        std[key] = stdev(values) if len(values) > 1 else 0.0
    entry = dict(runs[0])
    for key in SEED_TIMES:
        if key in mean:
            entry[key] = round(mean[key], 4)
    entry["metrics"] = {k: mean.get(k, v) for k, v in runs[0]["metrics"].items()}
    if "robustness" in runs[0]:
        entry["robustness"] = {k: mean.get(k, v) for k, v in runs[0]["robustness"].items()}
    entry["n_seeds"] = len(runs)
    entry["seeds"] = [dict(run, seed=run["config"]["seed"]) for run in runs]
    entry["mean"], entry["std"] = mean, std
    return entry


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 4)


def _check(value, ok) -> dict:
    missing = value is None or (isinstance(value, tuple) and any(v is None for v in value))
    return {"value": value, "met": None if missing else bool(ok(value))}


# The benchmark's acceptance targets on GRIN-NPO (the mean over seeds in the headline; each seed has its own).
ACCEPTANCE = ("grin_npo_mia_auc_within_0.1_retrain", "grin_npo_forget_quality_above_target",
              "grin_npo_forget_quality_ge_npo", "grin_npo_utility_ge_0.95_target",
              "grin_npo_retain_rougeL_ge_0.9_target", "grin_npo_forget_rougeL_within_0.1_retrain")


def acceptance_checks(g: Mapping, target: Mapping, retrain: Mapping, npo: Mapping | None) -> dict:
    """The acceptance targets for one set of GRIN-NPO metrics (`npo`: full-parameter NPO's)."""
    f = npo or {}
    return {
        "grin_npo_mia_auc_within_0.1_retrain": _check(_difference(g.get("mia_auc"), retrain.get("mia_auc")),
                                                      lambda v: abs(v) <= 0.1),
        "grin_npo_forget_quality_above_target": _check((g.get("forget_quality"), target.get("forget_quality")),
                                                       lambda v: v[0] > v[1]),
        "grin_npo_forget_quality_ge_npo": _check(
            (g.get("forget_quality"), f.get("forget_quality")) if npo is not None else None, lambda v: v[0] >= v[1]),
        "grin_npo_utility_ge_0.95_target": _check(_ratio(g.get("model_utility"), target.get("model_utility")),
                                                  lambda v: v >= 0.95),
        "grin_npo_retain_rougeL_ge_0.9_target": _check(_ratio(g.get("retain_rougeL"), target.get("retain_rougeL")),
                                                       lambda v: v >= 0.9),
        "grin_npo_forget_rougeL_within_0.1_retrain": _check(
            _difference(g.get("forget_rougeL"), retrain.get("forget_rougeL")), lambda v: abs(v) <= 0.1),
    }


def headline(report: dict) -> tuple[dict, dict]:
    """The headline ratios and whether each target is met (None when not measurable).

    GRIN-NPO's numbers are its mean over seeds (its entry's top-level `metrics`)."""
    methods, target = report["methods"], report["target"]["metrics"]
    retrained = report["retrain"]["metrics"]
    grin, full = methods.get("grin-npo"), methods.get("npo")
    retrain_s = report["retrain"]["train_s"]
    g = grin["metrics"] if grin else {}
    f = full["metrics"] if full else {}
    ratios = {
        "grin_npo_wall_over_retrain": _ratio(grin and grin["wall_s"], retrain_s),
        "grin_npo_scoring_over_fwd_bwd": grin and grin.get("scoring_over_fwd_bwd"),
        "grin_npo_state_bytes_over_npo": _ratio(grin and grin["state_bytes"]["total"],
                                                full and full["state_bytes"]["total"]),
        "grin_npo_utility_over_target": _ratio(g.get("model_utility"), target["model_utility"]),
        "grin_npo_retain_rougeL_over_target": _ratio(g.get("retain_rougeL"), target.get("retain_rougeL")),
        "grin_npo_mia_auc_minus_retrain": _difference(g.get("mia_auc"), retrained.get("mia_auc")),
        "grin_npo_forget_rougeL_minus_retrain": _difference(g.get("forget_rougeL"), retrained.get("forget_rougeL")),
        "wall_over_retrain": {name: _ratio(entry["wall_s"], retrain_s) for name, entry in methods.items()
                              if name != "retrain"},
    }

    targets = acceptance_checks(g, target, retrained, f if full else None) if grin else {
        name: {"value": None, "met": None} for name in ACCEPTANCE}
    targets.update({
        "grin_npo_forget_quality_ge_0.5": _check(g.get("forget_quality"), lambda v: v >= 0.5),
        "grin_npo_beats_npo_on_forget_quality": _check(
            (g.get("forget_quality"), f.get("forget_quality")) if grin and full else None, lambda v: v[0] > v[1]),
        "grin_npo_beats_npo_on_model_utility": _check(
            (g.get("model_utility"), f.get("model_utility")) if grin and full else None, lambda v: v[0] > v[1]),
        "grin_npo_wall_le_3pct_retrain": _check(ratios["grin_npo_wall_over_retrain"], lambda v: v <= 0.03),
        "scoring_le_1.2_fwd_bwd": _check(ratios["grin_npo_scoring_over_fwd_bwd"], lambda v: v <= 1.2),
        "grin_npo_state_bytes_le_0.5_npo": _check(ratios["grin_npo_state_bytes_over_npo"], lambda v: v <= 0.5),
    })
    return ratios, targets


def acceptance_summary(report: dict) -> dict:
    """The acceptance in one place: each target on the mean, all met, and per seed."""
    targets = report["targets"]
    met = [targets[name]["met"] for name in ACCEPTANCE]
    grin = report["methods"].get("grin-npo") or {}
    per_seed = []
    for run in grin.get("seeds", []):
        checks = run.get("acceptance", {})
        flags = [checks.get(name, {}).get("met") for name in ACCEPTANCE]
        per_seed.append({"seed": run["seed"], "met": None if None in flags else all(flags),
                         "failed": [name for name, ok in zip(ACCEPTANCE, flags) if ok is False]})
    return {
        "targets": dict(zip(ACCEPTANCE, met)),
        "met": None if None in met else all(met),
        "per_seed": per_seed,
    }
