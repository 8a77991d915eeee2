"""`grin bench`: measure GRIN against the alternatives a user would pick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from benchmarks import tofu_config
from cli.commands._output import reports_errors

app = typer.Typer(help="Benchmarks: GRIN against full-parameter unlearning and retraining.", no_args_is_help=True)


def _name_values(option: str, items: list[str]) -> dict[str, list[float]]:
    """['p=0.2,0.4', 'sigma2=0'] -> {'p': [0.2, 0.4], 'sigma2': [0.0]}."""
    parsed: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            parsed[name.strip()] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise typer.BadParameter(f"expected NAME=VALUE[,VALUE...], got {item!r}", param_hint=option) from None
    return parsed


DEFAULT_METHODS = ",".join(tofu_config.DEFAULT_METHODS)  # tofu_config imports no torch
# The options of `grin bench tofu`, one alias each (the command's signature stays readable).
Split = Annotated[str, typer.Option(help="TOFU forget split: forget01, forget05 or forget10.")]
Authors = Annotated[
    int,
    typer.Option(
        help="Authors kept (2-200): the last share of them is forgotten, the rest retained. "
        "20 is the 2-core CPU default; 200 is the GPU setting."
    ),
]
Methods = Annotated[
    str,
    typer.Option(
        help="Comma-separated: grin-match, grin-npo, grin-graddiff, grin-po (GRIN), match, npo, graddiff, po "
        "(full-parameter), grun (gated intervention; base weights unchanged, and a second request on "
        "top), retrain (from scratch on the retain authors)."
    ),
]
JsonPath = Annotated[Path | None, typer.Option("--json", help="Write the report here (else stdout).")]
Plot = Annotated[Path | None, typer.Option(help="Write the forget quality / utility figure here (PNG).")]
Sweep = Annotated[
    list[str] | None,
    typer.Option(
        help="Ablation of GRIN at its defaults, repeatable: p=0.2,0.4,0.6,0.8 (percent of weights) or "
        "sigma2=0,1e-4,1e-3,1e-2."
    ),
]
Curves = Annotated[
    Path | None,
    typer.Option(
        help="Write the per-epoch privacy-probe curves of the GRIN methods and NPO here (PNG): "
        "forget-vs-holdout MIA AUC with the target band, forget answer probability."
    ),
]
Epochs = Annotated[
    int | None,
    typer.Option(
        help="Unlearning epochs (passes over the forget set), every method. Default: 8 for the "
        "full-parameter baselines; UnlearnConfig's default for GRIN methods (the privacy "
        "schedule's budget: it stops earlier once the forget set looks unseen)."
    ),
]
Seeds = Annotated[
    int,
    typer.Option(
        help="GRIN at the service's defaults (grin-match) runs over seeds SEED..SEED+N-1 (fresh target copy each); "
        "the report "
        "gives per-seed results, mean and std, and the headline uses the mean."
    ),
]
Schedule = Annotated[
    bool,
    typer.Option(
        "--schedule/--no-schedule",
        help="GRIN methods steer the forget-vs-holdout MIA AUC into the calibrated non-member "
        "band (default); --no-schedule runs them for fixed epochs (ablation; curves still recorded).",
    ),
]
Probes = Annotated[
    bool,
    typer.Option(
        "--probes/--no-probes",
        help="Robustness probes on every model (paraphrase, best-of-8 sampling, prompt formats, "
        "int8/int4, relearning); --no-probes skips them (faster, fewer numbers).",
    ),
]
LearningRates = Annotated[
    list[str] | None, typer.Option(help="Override a method's learning rate, repeatable: npo=1e-4.")
]
Recipe = Annotated[
    str,
    typer.Option(
        help="Target/retrain recipe: cpu (default), gpu, smollm2 (SmolLM2-135M-Instruct fine-tuned; "
        "make smollm2 first) or tiny (seconds; for tests)."
    ),
]
DataDir = Annotated[Path | None, typer.Option(help="TOFU files (default: $GRIN_TOFU_DIR or ../shared/data/tofu).")]
CacheDir = Annotated[
    Path | None, typer.Option(help="Trained-model cache (default: .grin/cache/models in the repository).")
]
Resume = Annotated[
    Path | None,
    typer.Option(
        help="Keep each finished evaluation and method here; a rerun with the same folder "
        "and settings picks up where a killed run stopped."
    ),
]
Seed = Annotated[int, typer.Option(help="Seeds training, unlearning and the noise.")]
Threads = Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's choice, one per core).")]


@app.command()
@reports_errors
def tofu(
    split: Split = "forget10",
    authors: Authors = 20,
    methods: Methods = DEFAULT_METHODS,
    json_path: JsonPath = None,
    plot: Plot = None,
    sweep: Sweep = None,
    curves: Curves = None,
    epochs: Epochs = None,
    seeds: Seeds = 1,
    schedule: Schedule = True,
    probes: Probes = True,
    lr: LearningRates = None,
    recipe: Recipe = "cpu",
    data_dir: DataDir = None,
    cache_dir: CacheDir = None,
    resume: Resume = None,
    seed: Seed = 0,
    threads: Threads = None,
) -> None:
    """Target vs GRIN vs full-parameter unlearning vs retraining on TOFU, one report."""
    import shutil
    import sys

    from rich.console import Console

    from benchmarks.tofu import run_tofu_bench

    config = _bench_config(
        split=split,
        authors=authors,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        recipe=recipe,
        epochs=epochs,
        learning_rates={k: v[-1] for k, v in _name_values("--lr", lr or []).items() if v},
        sweeps={k: tuple(v) for k, v in _name_values("--sweep", sweep or []).items()},
        seed=seed,
        seeds=seeds,
        schedule=schedule,
        probes=probes,
        data_dir=data_dir,
        resume_dir=resume,
        **({"cache_dir": cache_dir} if cache_dir else {}),
    )
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    # The summary table has 11 columns: wider than the 80 rich assumes off a terminal.
    console = Console(
        stderr=True, highlight=False, log_path=False, width=max(140, shutil.get_terminal_size((140, 24)).columns)
    )
    report = run_tofu_bench(config, log=lambda line: console.log(line), command=" ".join(["grin", *sys.argv[1:]]))
    _write(console, report, json_path, plot, curves)
    _summary(console, report)


def _bench_config(**fields):
    """The BenchConfig of the options, checked (split and authors too) before any work."""
    from benchmarks.tofu_config import BenchConfig
    from grin_core.data.tofu import TofuSubset

    try:
        config = BenchConfig(**fields)
        TofuSubset(fields["authors"], fields["split"])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if config.data_dir is None or not (config.data_dir / "full.jsonl").is_file():
        typer.echo(f"error: no TOFU data in {config.data_dir or 'shared/data/tofu'} (pass --data-dir)", err=True)
        raise typer.Exit(1)
    return config


def _write(console, report: dict, json_path: Path | None, plot: Path | None, curves: Path | None) -> None:
    """The report as JSON (to `json_path`, else stdout), and the figures asked for."""
    text = json.dumps(report, indent=1, default=str)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
        console.log(f"report: {json_path}")
    else:
        typer.echo(text)
    if plot is not None:
        from benchmarks.plot import plot_report

        console.log(f"plot: {plot_report(report, plot)}")
    if curves is not None:
        from benchmarks.plot import plot_curves

        console.log(f"curves: {plot_curves(report, curves)}")


def _rebuild_line(console, report: dict) -> None:
    """Exact deletion's cost beside GRIN's: a rebuild (`grin model rebuild`) trains the line's recipe on its
    data minus the forget set, which is what the retrain row did, so its training time is the rebuild's."""
    methods = report.get("methods") or {}
    seeded = (report.get("ratios") or {}).get("seeded_method")
    retrain = methods.get("retrain") or report.get("retrain") or {}
    rebuild, grin = retrain.get("wall_s"), (methods.get(seeded) or {}).get("wall_s")
    if rebuild and grin:
        flops = (report.get("ratios") or {}).get("flops_over_retrain", {}).get(seeded)
        console.print(
            f"exact deletion (a rebuild = the retrain row): {rebuild:.1f} s; {seeded} for the same "
            f"deletions: {grin:.1f} s ({grin / rebuild:.1%} of the wall time"
            + (f", {flops:.3f}x the FLOPs)" if flops is not None else ")")
        )


_COLUMNS = (
    "model",
    "forget Q",
    "utility",
    "forget R-L",
    "retain R-L",
    "loss AUC",
    "zlib AUC",
    "Min-K AUC",
    "Min-K++ AUC",
    "mean p ratio",
    "privleak",
    "relearn R-L",
    "epochs",
    "FLOPs / retrain",
    "wall s",
    "state MiB",
)


def _summary(console, report: dict) -> None:
    console.print(_results_table(report))
    _rebuild_line(console, report)
    _verdicts(console, report)


def _fmt(value, spec=".3f") -> str:
    return "-" if value is None else format(value, spec)


def _cell(entry: dict, key: str, spec: str = ".3f", part: str = "metrics") -> str:
    """The value (a seeded method's mean), with its std over seeds when there are several."""
    value = _fmt((entry.get(part) or {}).get(key), spec)
    std = entry.get("std") or {}
    seeded = len(entry.get("seeds", [])) > 1 and key in std
    return value + (f" ±{std[key]:{spec}}" if seeded else "")


def _results_table(report: dict):
    """One row per model (the target, then each method), one column per headline number."""
    from rich.table import Table

    calibration = report.get("calibration") or {}
    table = Table(
        title=f"TOFU {report['split']}, {report['authors']} authors"
        + (f"; non-member AUC {calibration['auc']:.3f}" if calibration.get("auc") is not None else "")
    )
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, entry in [("target", report["target"]), *report["methods"].items()]:
        table.add_row(*_row(report, name, entry))
    return table


def _row(report: dict, name: str, entry: dict) -> tuple[str, ...]:
    state = entry.get("state_bytes", {}).get("total") if entry.get("state_bytes") else None
    n_seeds = len(entry.get("seeds", []))
    return (
        name + (f" (mean of {n_seeds})" if n_seeds > 1 else ""),
        _cell(entry, "forget_quality", ".3g"),
        _cell(entry, "model_utility"),
        _cell(entry, "forget_rougeL"),
        _cell(entry, "retain_rougeL"),
        _cell(entry, "mia_auc"),
        _cell(entry, "mia_zlib_auc"),
        _cell(entry, "mia_mink_auc"),
        _cell(entry, "mia_minkpp_auc"),
        _cell(entry, "forget_holdout_prob_ratio", ".2f"),
        _cell(entry, "privleak", ".1f"),
        _cell(entry, "relearn_forget_rougeL", part="robustness"),
        _fmt(entry.get("epochs_run"), ".0f"),
        _fmt(report["ratios"].get("flops_over_retrain", {}).get(name), ".3f"),
        _fmt(entry.get("wall_s"), ".1f"),
        _fmt(state and state / 2**20, ".1f"),
    )


def _verdicts(console, report: dict) -> None:
    """Each target's value and verdict, then the acceptance on the seeded method's mean and per seed."""
    for name, target in report["targets"].items():
        console.print(
            f"{name}: {target['value']} -> {'met' if target['met'] else 'NOT met' if target['met'] is False else 'n/a'}"
        )
    acceptance = report.get("acceptance")
    if acceptance:
        verdict = {True: "met", False: "NOT met", None: "n/a"}[acceptance["met"]]
        console.print(f"acceptance ({report['ratios'].get('seeded_method')} mean): {verdict}")
        for run in acceptance["per_seed"]:
            state = {True: "met", None: "n/a"}.get(run["met"], "NOT met: " + ", ".join(run["failed"]))
            console.print(f"  seed {run['seed']}: {state}")
