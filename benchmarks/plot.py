"""The benchmark's figures. Matplotlib's Agg backend; numbers only, never record text.

`plot_report`, after the TOFU paper's figure. Left: forget quality (log) against model utility,
one point per method, the target and the retrained model (top: forgets like a model that never
saw the data; right: keeps utility); sweep runs as small labelled points; a method run over
several seeds shows each seed faded and its mean with a one-std bar. Middle: PrivLeak against
model utility (0 = the retrained model's Min-K% MIA; below = the forget set still leaks, above =
over-unlearned). Right: what each method cost in wall time (log), retraining the bar to beat.

`plot_curves`: the per-epoch privacy probes of GRIN-NPO (every seed) and full-parameter NPO -
forget-vs-holdout loss-MIA AUC with the calibrated target band, forget answer probability (log)
and retain probability; filled markers = push epochs, hollow = repair (retain-only) epochs.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.tofu_config import SEEDED_METHOD

FLOOR = 1e-20  # forget quality is a p-value; a 0 would vanish from a log axis
STYLE = {  # method -> (colour, marker)
    "grin-match": ("#9467bd", "P"),
    "grin-npo": ("#d62728", "o"),
    "grin-graddiff": ("#ff7f0e", "o"),
    "grin-po": ("#9467bd", "o"),
    "npo": ("#1f77b4", "s"),
    "graddiff": ("#17becf", "s"),
    "po": ("#8c564b", "s"),
    "grun": ("#e377c2", "D"),
    "retrain": ("#2ca02c", "*"),
    "target": ("#000000", "X"),
}


def _point(metrics: dict, y: str = "forget_quality") -> tuple[float, float] | None:
    utility, value = metrics.get("model_utility"), metrics.get(y)
    if utility is None or value is None:
        return None
    return utility, max(value, FLOOR) if y == "forget_quality" else value


def _scatter_models(ax, report: dict, y: str) -> None:
    """Target, retrained model and every method on (model utility, `y`); seeds faded, mean with std bars."""
    points = {"target": report["target"]["metrics"], "retrain": report["retrain"]["metrics"]}
    points.update({name: entry["metrics"] for name, entry in report["methods"].items() if name != "retrain"})
    for name, metrics in points.items():
        xy = _point(metrics, y)
        if xy is None:
            continue
        colour, marker = STYLE.get(name, ("#7f7f7f", "o"))
        entry = report["methods"].get(name, {})
        runs = entry.get("seeds", [])
        if len(runs) > 1:
            for run in runs:
                seed_xy = _point(run["metrics"], y)
                if seed_xy is not None:
                    ax.scatter(*seed_xy, s=30, c=colour, marker=marker, alpha=0.35, zorder=2, linewidths=0)
            std = entry.get("std", {})
            ax.errorbar(
                *xy,
                xerr=std.get("model_utility", 0),
                yerr=std.get(y, 0) if y != "forget_quality" else None,
                fmt="none",
                ecolor=colour,
                elinewidth=1,
                capsize=3,
                zorder=2,
            )
        label = name + (f" (mean, {len(runs)} seeds)" if len(runs) > 1 else "")
        ax.scatter(
            *xy,
            s=160 if marker == "*" else 70,
            c=colour,
            marker=marker,
            label=label,
            zorder=3,
            edgecolors="white",
            linewidths=0.6,
        )


def plot_report(report: dict, path: str | Path) -> Path:
    """Write the figure of a `run_tofu_bench` report to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (quality_ax, leak_ax, cost_ax) = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [3, 3, 2]})

    _scatter_models(quality_ax, report, "forget_quality")
    for param, runs in report.get("sweeps", {}).items():
        for value, entry in runs.items():
            xy = _point(entry["metrics"])
            if xy is not None:
                quality_ax.scatter(*xy, s=18, c="#7f7f7f", zorder=2)
                quality_ax.annotate(
                    f"{param}={value}", xy, textcoords="offset points", xytext=(4, 3), fontsize=7, color="#555555"
                )
    quality_ax.set_yscale("log")
    quality_ax.set_xlabel("model utility")
    quality_ax.set_ylabel("forget quality (KS p-value vs retrained, log)")
    quality_ax.axhline(0.05, color="#bbbbbb", linestyle=":", linewidth=1)
    quality_ax.grid(True, which="major", alpha=0.3)
    quality_ax.legend(fontsize=8, loc="best", framealpha=0.8)
    quality_ax.set_title(f"TOFU {report['split']}, {report['authors']} authors", fontsize=10)

    _scatter_models(leak_ax, report, "privleak")
    leak_ax.axhline(0, color="#2ca02c", linestyle="--", linewidth=1)
    leak_ax.set_xlabel("model utility")
    leak_ax.set_ylabel("PrivLeak, % (Min-K% MIA; 0 = retrained)")
    leak_ax.grid(True, which="major", alpha=0.3)
    reference = report["retrain"]["metrics"].get("mia_mink_auc")
    leak_ax.set_title(
        "privacy" + (f" (retrained Min-K% AUC {reference:.3f})" if reference is not None else ""), fontsize=10
    )

    costs = [(name, entry["wall_s"]) for name, entry in report["methods"].items() if entry.get("wall_s")]
    if "retrain" not in report["methods"] and report["retrain"].get("train_s"):
        costs.append(("retrain", report["retrain"]["train_s"]))
    if costs:
        names, seconds = zip(*costs)
        colours = [STYLE.get(n, ("#7f7f7f", "o"))[0] for n in names]
        bars = cost_ax.barh(names, seconds, color=colours)
        cost_ax.bar_label(
            bars, labels=[f"{s:.0f} s" if s >= 10 else f"{s:.1f} s" for s in seconds], fontsize=8, padding=2
        )
        cost_ax.set_xscale("log")
        cost_ax.set_xlim(min(seconds) / 2, max(seconds) * 6)
        cost_ax.invert_yaxis()
    cost_ax.set_xlabel("wall time, s (log; retrain = training from scratch)")
    cost_ax.set_title("cost", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


CURVES = (SEEDED_METHOD, "grin-npo", "npo")  # the methods whose per-epoch probes are drawn
SEED_LINESTYLES = ("-", "--", "-.", ":")
CURVE_PANELS = (
    ("mia_auc", "forget-vs-holdout loss-MIA AUC", False),
    ("forget_prob", "forget answer probability (per token, log)", True),
    ("retain_prob", "retain answer probability (per token)", False),
)


def _curve_runs(report: dict) -> list[tuple[str, str, list[dict]]]:
    """(method, label, per-epoch probes) for GRIN-NPO's seeds and NPO, where recorded."""
    runs = []
    for name in CURVES:
        entry = report["methods"].get(name)
        if not entry:
            continue
        seeds = entry.get("seeds") or [entry]
        for run in seeds:
            if run.get("probes"):
                label = name + (f" seed {run.get('seed')}" if len(seeds) > 1 else "")
                runs.append((name, label, run["probes"]))
    return runs


def plot_curves(report: dict, path: str | Path) -> Path:
    """Write the per-epoch probe curves of GRIN-NPO and NPO of a `run_tofu_bench` report (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(16, 4.4))
    calibration = report.get("calibration") or {}
    grin = report["methods"].get(SEEDED_METHOD) or {}
    band = (grin.get("schedule") or {}).get("band")
    retrained = report["retrain"]["metrics"]
    for ax, (key, label, log) in zip(axes, CURVE_PANELS):
        _reference_lines(ax, key, log, band, calibration, retrained)
        for index, (name, run_label, probes) in enumerate(_curve_runs(report)):
            _draw_run(ax, key, log, index, name, run_label, probes)
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (0 = before unlearning)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best", framealpha=0.8)
    axes[1].set_title("dotted: holdout probability; hollow markers: repair epochs", fontsize=9)
    fig.suptitle(f"privacy probes per epoch - TOFU {report['split']}, {report['authors']} authors", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _reference_lines(ax, key: str, log: bool, band: list[float] | None, calibration: dict, retrained: dict) -> None:
    """What a panel's curves are read against: the schedule's target band and the calibrated non-member
    AUC (the MIA panel), and the retrained model's value (MIA and forget probability)."""
    if key == "mia_auc":
        if band:
            ax.axhspan(*band, color="#2ca02c", alpha=0.15, label="target band")
        if calibration.get("auc") is not None:
            ax.axhline(calibration["auc"], color="#2ca02c", linewidth=1, label="non-member AUC (calibrated)")
    reference = retrained.get(key) if key in ("mia_auc", "forget_prob") else None
    if reference is not None:
        ax.axhline(
            max(reference, FLOOR) if log else reference,
            color="#2ca02c",
            linestyle="--",
            linewidth=1,
            label="retrained model",
        )


def _draw_run(ax, key: str, log: bool, index: int, name: str, run_label: str, probes: list[dict]) -> None:
    """One run's per-epoch curve on a panel: filled markers for push epochs, hollow for repair ones, and
    on the forget-probability panel the holdout's probability dotted."""
    colour, marker = STYLE.get(name, ("#7f7f7f", "o"))
    linestyle = SEED_LINESTYLES[index % len(SEED_LINESTYLES)] if name == SEEDED_METHOD else "-"
    points = [(p["epoch"], p[key], p.get("phase")) for p in probes if p.get(key) is not None]
    if not points:
        return
    xs = [x for x, _, _ in points]
    ys = [max(y, FLOOR) if log else y for _, y, _ in points]
    ax.plot(xs, ys, color=colour, alpha=0.8, linewidth=1.2, linestyle=linestyle, label=run_label)
    for x, y, (_, _, phase) in zip(xs, ys, points):
        ax.scatter(
            x,
            y,
            s=22,
            marker=marker,
            zorder=3,
            edgecolors=colour,
            facecolors="none" if phase == "repair" else colour,
        )
    if key == "forget_prob":
        holdout = [(p["epoch"], p["holdout_prob"]) for p in probes if p.get("holdout_prob") is not None]
        if holdout:
            ax.plot(*zip(*holdout), color=colour, alpha=0.5, linewidth=0.8, linestyle=":")
