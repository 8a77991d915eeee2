"""`grin bench`: measure GRIN against the alternatives a user would pick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Benchmarks: GRIN against full-parameter unlearning and retraining.", no_args_is_help=True
)

# Mirrors flows/bench/tofu.py (imported lazily: that module's work pulls in torch).
DEFAULT_METHODS = "grin-npo,grin-graddiff,grin-po,npo,graddiff,retrain"


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
            raise typer.BadParameter(
                f"expected NAME=VALUE[,VALUE...], got {item!r}", param_hint=option
            ) from None
    return parsed


@app.command()
def tofu(
    split: Annotated[
        str, typer.Option(help="TOFU forget split: forget01, forget05 or forget10.")
    ] = "forget10",
    authors: Annotated[
        int,
        typer.Option(
            help="Authors kept (2-200): the last share of them is forgotten, the rest retained. "
            "20 is the 2-core CPU default; 200 is the GPU setting."
        ),
    ] = 20,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: grin-npo, grin-graddiff, grin-po (GRIN), npo, graddiff, po "
            "(full-parameter), retrain (from scratch on the retain authors)."
        ),
    ] = DEFAULT_METHODS,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report here (else stdout).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write the forget quality / utility figure here (PNG).")
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help="GRIN-NPO ablation, repeatable: p=0.2,0.4,0.6,0.8 (percent of weights) or "
            "sigma2=0,1e-4,1e-3,1e-2."
        ),
    ] = None,
    epochs: Annotated[
        int, typer.Option(help="Unlearning epochs (passes over the forget set), every method.")
    ] = 8,
    lr: Annotated[
        list[str] | None,
        typer.Option(help="Override a method's learning rate, repeatable: npo=1e-4."),
    ] = None,
    recipe: Annotated[
        str, typer.Option(help="Target/retrain recipe: cpu (default) or tiny (seconds; for tests).")
    ] = "cpu",
    data_dir: Annotated[
        Path | None,
        typer.Option(help="TOFU files (default: $GRIN_TOFU_DIR or ../shared/data/tofu)."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Trained-model cache (default: .grin/cache/models in the repository)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds training, unlearning and the noise.")] = 0,
    threads: Annotated[int | None, typer.Option(
        help="torch CPU threads (default: torch's choice, one per core).")] = None,
) -> None:
    """Target vs GRIN vs full-parameter unlearning vs retraining on TOFU, one report."""
    import sys

    from rich.console import Console

    from flows.bench.tofu import BenchConfig, run_tofu_bench

    learning_rates = {k: v[-1] for k, v in _name_values("--lr", lr or []).items() if v}
    sweeps = {k: tuple(v) for k, v in _name_values("--sweep", sweep or []).items()}
    try:
        config = BenchConfig(
            split=split,
            authors=authors,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            recipe=recipe,
            epochs=epochs,
            learning_rates=learning_rates,
            sweeps=sweeps,
            seed=seed,
            data_dir=data_dir,
            **({"cache_dir": cache_dir} if cache_dir else {}),
        )
        from grin_core.tofu import TofuSubset

        TofuSubset(authors, split)  # checks split and authors before any work
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not (config.data_dir / "full.jsonl").is_file():
        typer.echo(f"error: no TOFU data in {config.data_dir} (pass --data-dir)", err=True)
        raise typer.Exit(1)

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    console = Console(stderr=True, highlight=False, log_path=False)
    report = run_tofu_bench(
        config, log=lambda line: console.log(line), command=" ".join(["grin", *sys.argv[1:]])
    )
    text = json.dumps(report, indent=1, default=str)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
        console.log(f"report: {json_path}")
    else:
        typer.echo(text)
    if plot is not None:
        from flows.bench.plot import plot_report

        console.log(f"plot: {plot_report(report, plot)}")
    _summary(console, report)


def _summary(console, report: dict) -> None:
    from rich.table import Table

    def fmt(value, spec=".3f") -> str:
        return "-" if value is None else format(value, spec)

    table = Table(title=f"TOFU {report['split']}, {report['authors']} authors")
    for column in (
        "model",
        "forget Q",
        "utility",
        "forget R-L",
        "retain R-L",
        "wall s",
        "state MiB",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    rows = [("target", report["target"]), *report["methods"].items()]
    for name, entry in rows:
        m = entry["metrics"]
        state = entry.get("state_bytes", {}).get("total") if entry.get("state_bytes") else None
        table.add_row(
            name,
            fmt(m.get("forget_quality"), ".3g"),
            fmt(m.get("model_utility")),
            fmt(m.get("forget_rougeL")),
            fmt(m.get("retain_rougeL")),
            fmt(entry.get("wall_s"), ".1f"),
            fmt(state and state / 2**20, ".1f"),
        )
    console.print(table)
    for name, target in report["targets"].items():
        console.print(
            f"{name}: {target['value']} -> {'met' if target['met'] else 'NOT met' if target['met'] is False else 'n/a'}"
        )
