"""The report's summaries of one benchmark run: where it ran, how GRIN methods were steered, the
seeds' mean and std, the acceptance checks and the headline ratios."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.tofu_config import SEEDED_METHOD, BenchConfig


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
        model_name = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
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

    grin = config.method_config(SEEDED_METHOD)
    schedule_fields = {f.name for f in fields(grin)} & {
        "auc_margin",
        "retain_recovery",
        "stop_rule",
        "attack_margin",
        "relearn_guard",
        "relearn_eps",
    }
    return {
        "grin": config.schedule,
        "grin_epochs": grin.max_epochs if config.schedule else grin.epochs,
        "full_parameter_epochs": config.method_config("npo").epochs,
        **{name: getattr(grin, name) for name in sorted(schedule_fields)},
    }


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


# The acceptance targets on the seeded GRIN method (the service's default objective): every attack and
# relearning where the retrained model is, utility and retain kept (the mean over seeds in the headline;
# each seed has its own).
ATTACK_METRICS = ("mia_auc", "mia_zlib_auc", "mia_mink_auc", "mia_minkpp_auc")
ACCEPTANCE = (
    *(f"{metric}_within_0.1_retrain" for metric in ATTACK_METRICS),
    "privleak_within_25",
    "mean_prob_ratio_le_3",
    "relearn_le_retrain_plus_0.1",
    "utility_ge_0.95_target",
    "retain_rougeL_ge_0.9_target",
    "forget_rougeL_within_0.1_retrain",
)
# Compute against retraining, in FLOPs (settings with a target).
COST_TARGETS = {20: 0.10, 40: 0.15}


def acceptance_checks(
    g: Mapping,
    target: Mapping,
    retrain: Mapping,
    robustness: Mapping | None = None,
    retrain_robustness: Mapping | None = None,
) -> dict:
    """The acceptance targets for one set of a GRIN method's metrics (and its robustness probes beside
    the retrained model's under the same attack)."""
    relearned = (robustness or {}).get("relearn_forget_rougeL")
    control = (retrain_robustness or {}).get("relearn_forget_rougeL")
    checks = {
        f"{metric}_within_0.1_retrain": _check(_difference(g.get(metric), retrain.get(metric)), lambda v: abs(v) <= 0.1)
        for metric in ATTACK_METRICS
    }
    checks.update(
        {
            "privleak_within_25": _check(g.get("privleak"), lambda v: abs(v) <= 25),
            "mean_prob_ratio_le_3": _check(g.get("forget_holdout_prob_ratio"), lambda v: v <= 3),
            "relearn_le_retrain_plus_0.1": _check(_difference(relearned, control), lambda v: v <= 0.1),
            "utility_ge_0.95_target": _check(
                _ratio(g.get("model_utility"), target.get("model_utility")), lambda v: v >= 0.95
            ),
            "retain_rougeL_ge_0.9_target": _check(
                _ratio(g.get("retain_rougeL"), target.get("retain_rougeL")), lambda v: v >= 0.9
            ),
            "forget_rougeL_within_0.1_retrain": _check(
                _difference(g.get("forget_rougeL"), retrain.get("forget_rougeL")), lambda v: abs(v) <= 0.1
            ),
        }
    )
    return checks


def retrain_flops(retrain: Mapping) -> float | None:
    """What retraining cost in model FLOPs, counted as a deletion is (6N per trained token)."""
    throughput = retrain.get("throughput") or {}
    if not throughput.get("tokens_per_epoch") or not retrain.get("epochs"):
        return None
    from grin_core.runtime.flops import training_flops

    return training_flops(throughput["matmul_params"], throughput["tokens_per_epoch"], retrain["epochs"])


def unlearning_flops(entry: Mapping) -> float | None:
    """A method's model FLOPs from the target to the unlearned model (every stage but evaluation)."""
    return (entry.get("flops") or {}).get("total_flops")


def headline(report: dict) -> tuple[dict, dict]:
    """The headline ratios and whether each target is met (None when not measurable).

    The seeded GRIN method's numbers are its mean over seeds (its entry's top-level `metrics`)."""
    methods, target = report["methods"], report["target"]["metrics"]
    retrained = report["retrain"]["metrics"]
    grin = methods.get(SEEDED_METHOD)
    retrain_s, retrain_cost = report["retrain"]["train_s"], retrain_flops(report["retrain"])
    g = grin["metrics"] if grin else {}
    ratios = {
        "seeded_method": SEEDED_METHOD,
        "grin_flops_over_retrain": _ratio(grin and _mean_flops(grin), retrain_cost),
        "grin_wall_over_retrain": _ratio(grin and grin["wall_s"], retrain_s),
        "grin_scoring_over_fwd_bwd": grin and grin.get("scoring_over_fwd_bwd"),
        "grin_state_bytes_over_npo": _ratio(
            grin and grin["state_bytes"]["total"], methods.get("npo") and methods["npo"]["state_bytes"]["total"]
        ),
        "grin_utility_over_target": _ratio(g.get("model_utility"), target["model_utility"]),
        "grin_retain_rougeL_over_target": _ratio(g.get("retain_rougeL"), target.get("retain_rougeL")),
        "grin_mia_auc_minus_retrain": {
            metric: _difference(g.get(metric), retrained.get(metric)) for metric in ATTACK_METRICS
        },
        "retrain_flops": retrain_cost,
        "flops_over_retrain": {
            name: _ratio(_mean_flops(entry), retrain_cost) for name, entry in methods.items() if name != "retrain"
        },
        "wall_over_retrain": {
            name: _ratio(entry["wall_s"], retrain_s) for name, entry in methods.items() if name != "retrain"
        },
    }
    targets = (
        acceptance_checks(
            g, target, retrained, grin.get("robustness") if grin else None, report["retrain"].get("robustness")
        )
        if grin
        else {name: {"value": None, "met": None} for name in ACCEPTANCE}
    )
    cost = COST_TARGETS.get(report.get("authors"))
    targets["flops_le_target_retrain"] = _check(
        ratios["grin_flops_over_retrain"] if cost else None, lambda v: v <= cost
    )
    targets["scoring_le_1.05_fwd_bwd"] = _check(ratios["grin_scoring_over_fwd_bwd"], lambda v: v <= 1.05)
    return ratios, targets


def _mean_flops(entry: Mapping) -> float | None:
    """A method's unlearning FLOPs, the mean over its seeds when it has several."""
    runs = entry.get("seeds") or [entry]
    values = [unlearning_flops(run) for run in runs]
    return None if not values or None in values else sum(values) / len(values)


def acceptance_summary(report: dict) -> dict:
    """The acceptance in one place: each target on the mean, all met, and per seed."""
    targets = report["targets"]
    met = [targets[name]["met"] for name in ACCEPTANCE]
    grin = report["methods"].get(SEEDED_METHOD) or {}
    per_seed = []
    for run in grin.get("seeds", []):
        checks = run.get("acceptance", {})
        flags = [checks.get(name, {}).get("met") for name in ACCEPTANCE]
        per_seed.append(
            {
                "seed": run["seed"],
                "met": None if None in flags else all(flags),
                "failed": [name for name, ok in zip(ACCEPTANCE, flags) if ok is False],
            }
        )
    return {
        "targets": dict(zip(ACCEPTANCE, met)),
        "met": None if None in met else all(met),
        "per_seed": per_seed,
    }
