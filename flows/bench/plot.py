"""The benchmark's figure, after the TOFU paper's: forget quality (log) against model utility.

Left: one point per method, the target and the retrained model (top: forgets like a model that
never saw the data; right: keeps utility); sweep runs as small labelled points. Right: what each
method cost in wall time (log), with retraining as the bar to beat. Matplotlib's Agg backend.
"""

from __future__ import annotations

from pathlib import Path

FLOOR = 1e-20  # forget quality is a p-value; a 0 would vanish from a log axis
STYLE = {  # method -> (colour, marker)
    "grin-npo": ("#d62728", "o"),
    "grin-graddiff": ("#ff7f0e", "o"),
    "grin-po": ("#9467bd", "o"),
    "npo": ("#1f77b4", "s"),
    "graddiff": ("#17becf", "s"),
    "po": ("#8c564b", "s"),
    "retrain": ("#2ca02c", "*"),
    "target": ("#000000", "X"),
}


def _point(metrics: dict) -> tuple[float, float] | None:
    utility, quality = metrics.get("model_utility"), metrics.get("forget_quality")
    if utility is None or quality is None:
        return None
    return utility, max(quality, FLOOR)


def plot_report(report: dict, path: str | Path) -> Path:
    """Write the figure of a `run_tofu_bench` report to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (quality_ax, cost_ax) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})

    points = {"target": report["target"]["metrics"], "retrain": report["retrain"]["metrics"]}
    points.update({name: entry["metrics"] for name, entry in report["methods"].items() if name != "retrain"})
    for name, metrics in points.items():
        xy = _point(metrics)
        if xy is None:
            continue
        colour, marker = STYLE.get(name, ("#7f7f7f", "o"))
        quality_ax.scatter(*xy, s=160 if marker == "*" else 70, c=colour, marker=marker, label=name, zorder=3,
                           edgecolors="white", linewidths=0.6)
    for param, runs in report.get("sweeps", {}).items():
        for value, entry in runs.items():
            xy = _point(entry["metrics"])
            if xy is not None:
                quality_ax.scatter(*xy, s=18, c="#7f7f7f", zorder=2)
                quality_ax.annotate(f"{param}={value}", xy, textcoords="offset points", xytext=(4, 3),
                                    fontsize=7, color="#555555")
    quality_ax.set_yscale("log")
    quality_ax.set_xlabel("model utility")
    quality_ax.set_ylabel("forget quality (KS p-value vs retrained, log)")
    quality_ax.axhline(0.05, color="#bbbbbb", linestyle=":", linewidth=1)
    quality_ax.grid(True, which="major", alpha=0.3)
    quality_ax.legend(fontsize=8, loc="best", framealpha=0.8)
    quality_ax.set_title(f"TOFU {report['split']}, {report['authors']} authors", fontsize=10)

    costs = [(name, entry["wall_s"]) for name, entry in report["methods"].items() if entry.get("wall_s")]
    if "retrain" not in report["methods"] and report["retrain"].get("train_s"):
        costs.append(("retrain", report["retrain"]["train_s"]))
    if costs:
        names, seconds = zip(*costs)
        colours = [STYLE.get(n, ("#7f7f7f", "o"))[0] for n in names]
        bars = cost_ax.barh(names, seconds, color=colours)
        cost_ax.bar_label(bars, labels=[f"{s:.0f} s" if s >= 10 else f"{s:.1f} s" for s in seconds], fontsize=8,
                          padding=2)
        cost_ax.set_xscale("log")
        cost_ax.set_xlim(min(seconds) / 2, max(seconds) * 6)
        cost_ax.invert_yaxis()
    cost_ax.set_xlabel("wall time, s (log; retrain = training from scratch)")
    cost_ax.set_title("cost", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
