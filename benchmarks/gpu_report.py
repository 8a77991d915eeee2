"""What `benchmarks.gpu_run` hands back: one JSON of every split's report, a markdown table of the
numbers the GPU benchmark reports, and the benchmark's figure per split. Numbers only, never record text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _training_rows(models: Mapping[str, Mapping]) -> list[str]:
    rows = [
        (
            "| model | records | epochs | final loss | train s | ms / step | tokens/s | model TFLOP/s | MFU "
            "| peak CUDA MiB |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        t = m.get("throughput") or {}
        cells = [
            name,
            m["n_records"],
            m["epochs"],
            _fmt(m["final_loss"]),
            _fmt(m["train_s"], ".1f"),
            _fmt(t.get("step_ms"), ".1f"),
            _fmt(t.get("tokens_per_s"), ".0f"),
            _fmt(t.get("model_tflops_per_s"), ".2f"),
            _fmt(t.get("mfu"), ".2%"),
            _fmt(m.get("peak_cuda_mb"), ".0f"),
        ]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return rows


def _split_rows(report: Mapping) -> list[str]:
    retrain_s = report["retrain"]["train_s"]
    calibration = report["calibration"]
    rows = [
        (
            f"### {report['split']}: {report['data']['n_forget']} forget QA, calibration "
            f"{calibration.get('source', 'unseen authors')} AUC {_fmt(calibration['auc'])}"
        ),
        "",
        (
            "| model | forget quality | model utility | forget ROUGE-L | retain ROUGE-L | MIA AUC | relearned ROUGE-L "
            "| wall s | wall / retrain | scoring / fwd+bwd | peak CUDA MiB |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    entries = {"target": {**report["target"], "wall_s": None}, **report["methods"]}
    for name, entry in entries.items():
        m, r = entry.get("metrics", {}), entry.get("robustness", {})
        wall = entry.get("wall_s")
        ratio = None if wall is None or not retrain_s or name == "retrain" else wall / retrain_s
        peak = (entry.get("state_bytes") or {}).get("cuda_max_allocated")
        if name == "retrain":
            peak = None if report["retrain"].get("peak_cuda_mb") is None else report["retrain"]["peak_cuda_mb"] * 2**20
        rows.append(
            f"| {name} | {_fmt(m.get('forget_quality'), '.3g')} | {_fmt(m.get('model_utility'))} "
            f"| {_fmt(m.get('forget_rougeL'))} | {_fmt(m.get('retain_rougeL'))} | {_fmt(m.get('mia_auc'))} "
            f"| {_fmt(r.get('relearn_forget_rougeL'))} | {_fmt(wall, '.1f')} | {_fmt(ratio, '.3f')} "
            f"| {_fmt(entry.get('scoring_over_fwd_bwd'), '.2f')} | {_mib(peak)} |"
        )
    return rows


def render_markdown(combined: Mapping) -> str:
    """The run as tables: training (throughput, MFU, memory), then per split every method."""
    machine = combined["machine"]
    lines = [
        f"# GPU run: {combined['recipe']} recipe, {combined['authors']} authors",
        "",
        (f"Device: {machine.get('device')}; torch {machine.get('torch')}; command: `{combined['command']}`"),
        "",
        "Phases: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in combined["phases"].items()),
        "",
        "## Training",
        "",
        *_training_rows(combined["models"]),
        "",
    ]
    for report in combined["splits"].values():
        lines += [*_split_rows(report), ""]
    for split, why in combined["missing"].items():
        lines += [f"### {split}: missing ({why})", ""]
    for split, methods in combined["lost"].items():
        lines += [f"{split} lacks: " + "; ".join(f"{m} ({why})" for m, why in methods.items()), ""]
    return "\n".join(lines)


def write_report(
    work: Path,
    out: Path,
    splits: list[str],
    requested: list[str],
    missing: Mapping[str, str],
    lost: Mapping[str, Mapping[str, str]],
    phases: Mapping,
    args,
    command: str,
) -> Path:
    """Combine the finished splits' reports into `out` (gpu_run.json, gpu_run.md, one PNG per split)."""
    from benchmarks.plot import plot_report
    from benchmarks.tofu_summary import machine

    reports = {s: json.loads((work / f"{s}.json").read_text()) for s in splits if (work / f"{s}.json").is_file()}
    models = {}
    for path in sorted(work.glob("train_*.json")):
        name = path.stem.removeprefix("train_")
        if name.startswith("target"):
            name = "target"
        models.setdefault(name, json.loads(path.read_text()))
    combined = {
        "recipe": args.recipe,
        "authors": args.authors,
        "command": command,
        "machine": machine(),
        "phases": dict(phases),
        "models": models,
        "splits": reports,
        "missing": {s: missing.get(s, "not reported") for s in splits if s not in reports},
        # methods asked for that a split's report lacks, with why (a rerun runs them)
        "lost": {
            s: {m: lost.get(s, {}).get(m, "not reported") for m in requested if m not in r["methods"]}
            for s, r in reports.items()
            if not set(requested) <= set(r["methods"])
        },
    }
    (out / "gpu_run.json").write_text(json.dumps(combined, indent=1, default=str) + "\n")
    (out / "gpu_run.md").write_text(render_markdown(combined) + "\n")
    for split, report in reports.items():
        plot_report(report, out / f"gpu_run_{split}.png")
    return out / "gpu_run.json"
