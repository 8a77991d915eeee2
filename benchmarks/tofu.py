"""`grin bench tofu`: GRIN against full-parameter unlearning and retraining, from one target model.

One run: train (or take from the model cache) the target model on a TOFU author subset and the
retrained model on its retain authors, with the same recipe; evaluate the retrained model first
(its forget truth ratios define forget quality), then the target; run every method from a fresh
copy of the target and evaluate each with the same code (`grin_core.evaluation.evaluate`).

What a method's numbers mean:
- `wall_s`: everything from the loaded target to the unlearned model - GRI scoring, reference
  log-probs, noise, training (`UnlearnResult.timings` has the parts); evaluation is not included.
  The retrain method's `wall_s` is its training time, read from the cache entry's recorded
  `train_seconds` when the model was not trained in this run (`cached: true`).
- `fwd_bwd_s` (GRIN methods): one forward+backward pass over the same forget+retain records GRI
  scores, timed on a fresh copy of the target right after the method; `scoring_over_fwd_bwd`
  is the method's `scoring_s` divided by it.
- `state_bytes`: the peak of every tensor kept for training (weights, gradients, optimizer
  state, NPO's reference log-probs, mask indices), counted from the tensors (state_bytes.py).
  For retrain it is counted after one AdamW step of the same training set-up.
- `peak_rss_mb`: the process's peak resident memory during the method (peak_rss.py); at this
  scale it is mostly interpreter and library overhead.

Privacy and robustness:
- `calibration`: the non-member AUC level of the line, measured on the target
  (`grin_core.evaluation.calibration.non_member_auc`):
  `grin_core.data.tofu.CALIBRATION_AUTHORS` TOFU authors of full.jsonl
  the target never saw (the first ones after the retain authors, forget authors skipped) against
  the suite's holdout (`source: unseen authors`). At 200 authors none is unseen: the level is then
  the retrained model's forget-vs-holdout AUC (`source: retrained`), an oracle a deployment lacks.
  GRIN methods run the privacy schedule into `auc` +- `auc_margin`
  (`--no-schedule`: a fixed-length run that only records the per-epoch probes); full-parameter
  baselines run their fixed epochs with the probes recorded (`steer=False`). Either way each
  method's `probes` are the per-epoch curves (epoch 0 = before training) and `schedule` says what
  the run did (epochs run, push / repair epochs, whether it ended in band).
- `metrics` (every model): `evaluate_suite` with the retrained model's Min-K% AUC as PrivLeak's
  reference (the retrained model's own `privleak` is 0 by definition); `robustness`:
  `grin_core.evaluation.probes.run_probes` with relearning, and next to each relearn number the retrained
  model's (`retrain_relearn_forget_rougeL` / `_prob`: the baseline - relearning teaches any model).
- `--seeds N`: GRIN-NPO runs N times (seeds seed .. seed+N-1, each from a fresh copy of the
  target); its entry carries `seeds` (one full entry per seed, with its own acceptance checks),
  `mean` and `std` (over seeds, of every number in metrics and robustness, and wall_s), and its
  top-level `metrics` / `robustness` / `wall_s` are the means, which the headline uses.

No record text is ever logged: progress lines carry stage names, counts, seconds and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.bench_memo import Memo, source_digest
from benchmarks.recipes import RECIPES
from benchmarks.tofu_bench import TofuBench, retrain_state, seconds_since
from benchmarks.tofu_config import SEEDED_METHOD, SWEEPS, BenchConfig, Log
from benchmarks.tofu_summary import (
    acceptance_checks,
    acceptance_summary,
    aggregate_seeds,
    headline,
    load_average,
    machine,
    schedule_settings,
)


def run_tofu_bench(config: BenchConfig, log: Log = lambda line: None, command: str | None = None) -> dict:
    """Run the benchmark; return the JSON-ready report (see the module docstring)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    started = time.perf_counter()
    load_before = load_average()
    bench = TofuBench(config, log)
    target_dir, target = bench.train("target", bench.data.train)
    retrain_dir, retrain = bench.train("retrain", bench.data.retrain)

    memo = _memo(config, target_dir, retrain_dir, log)
    retrain.update(memo.run("retrain", {}, partial(_evaluate_retrain, bench, retrain_dir)))
    bench.retrained_ratios = retrain.pop("forget_truth_ratios")
    bench.reference_auc = retrain["metrics"].get("mia_mink_auc")
    bench.retrain_relearn = {k: v for k, v in retrain.get("robustness", {}).items() if k.startswith("relearn_")}
    target.update(
        memo.run("target", {}, partial(_evaluate_target, bench, target_dir, retrain["metrics"].get("mia_auc")))
    )
    calibration = target.pop("calibration")
    bench.target_auc = calibration["auc"]

    bench.warm_up(target_dir)
    seeds = list(range(config.seed, config.seed + config.seeds))
    unlearn = partial(_unlearn, memo, bench, target_dir)
    methods = _run_methods(bench, unlearn, memo, target_dir, retrain_dir, target, retrain, seeds)
    sweeps = _run_sweeps(config, unlearn)
    base = _base_part(bench, memo)

    report = {
        "split": config.split,
        "authors": config.authors,
        "recipe": config.recipe,
        "command": command,
        "machine": machine(),
        "data": bench.data_summary(),
        "calibration": calibration,
        "schedule": schedule_settings(config),
        "seeds": seeds,
        "probe_settings": {**RECIPES[config.recipe].probe_settings, "seed": config.seed} if config.probes else None,
        "target": target,
        "retrain": retrain,
        "methods": methods,
        "sweeps": sweeps,
        **({"base": base} if base is not None else {}),
    }
    report["ratios"], report["targets"] = headline(report)
    report["acceptance"] = acceptance_summary(report)
    report["load_average"] = {"start": load_before, "end": load_average()}
    report["total_wall_s"] = seconds_since(started)
    log(f"done in {report['total_wall_s']:.0f} s; load average {load_before} -> {report['load_average']['end']}")
    return report


def _memo(config: BenchConfig, target_dir: Path, retrain_dir: Path, log: Log) -> Memo:
    """The resume memo, keyed by the code, the benchmark's settings and the two trained models: a part
    done under the same key is read back instead of run again."""
    return Memo(
        config.resume_dir,
        {
            "code": source_digest(),
            "split": config.split,
            "authors": config.authors,
            "recipe": config.recipe,
            "seed": config.seed,
            "probes": config.probes,
            "target": target_dir.name,
            "retrain": retrain_dir.name,
        },
        log,
    )


def _run_sweeps(config: BenchConfig, unlearn: Callable[..., dict]) -> dict[str, dict[str, dict]]:
    """The seeded method once per swept value of each parameter, without the robustness probes:
    {param: {value: entry}}."""
    sweeps: dict[str, dict[str, dict]] = {}
    for param, values in config.sweeps.items():
        for value in values:
            label = f"{SEEDED_METHOD} {param}={value:g}"
            entry = unlearn(
                label,
                config.method_config(SEEDED_METHOD, **{SWEEPS[param]: value}),
                steer=config.steers(SEEDED_METHOD),
                probes=False,
            )
            sweeps.setdefault(param, {})[f"{value:g}"] = entry
    return sweeps


def _base_part(bench: TofuBench, memo: Memo) -> dict | None:
    """The un-fine-tuned base's own numbers (no probes), last: what the pretrained model brought before it
    saw any author. None for a from-scratch recipe."""
    if bench.recipe.base is None:
        return None

    def evaluate() -> dict:
        model, tokenizer = bench.load(bench.base_dir())
        metrics, eval_s, _ = bench.evaluate("base", model, tokenizer)
        return {"source": bench.recipe.base, "checkpoint": bench.base_dir().name, "metrics": metrics, "eval_s": eval_s}

    return memo.run("base", {}, evaluate)


def _evaluate_retrain(bench: TofuBench, retrain_dir: Path) -> dict:
    """The retrained model's evaluation part (and its probes)."""
    from grin_core.metrics.mia import privleak

    model, tokenizer = bench.load(retrain_dir)
    metrics, eval_s, ratios = bench.evaluate("retrain", model, tokenizer)
    if not ratios:
        raise ValueError("the retrained model has no forget truth ratios; forget quality needs them")
    # The retrained model against itself: forget quality 1 and PrivLeak 0 by construction.
    metrics["forget_quality"] = 1.0
    reference = metrics.get("mia_mink_auc")
    if reference is not None:
        metrics["privleak"] = privleak(reference, reference)
        metrics["privleak_reference_auc"] = reference
    part = {"metrics": metrics, "eval_s": eval_s, "forget_truth_ratios": ratios}
    if bench.config.probes:
        part["robustness"], part["probes_s"] = bench.robustness("retrain", model, tokenizer)
    return part


def _evaluate_target(bench: TofuBench, target_dir: Path, retrain_mia_auc: float | None) -> dict:
    """The target model's evaluation part, its line's calibration (and its probes)."""
    model, tokenizer = bench.load(target_dir)
    metrics, eval_s, _ = bench.evaluate("target", model, tokenizer)
    part = {"metrics": metrics, "eval_s": eval_s, "calibration": bench.calibrate(model, tokenizer, retrain_mia_auc)}
    if bench.config.probes:
        part["robustness"], part["probes_s"] = bench.robustness("target", model, tokenizer)
    return part


def _unlearn(
    memo: Memo, bench: TofuBench, target_dir: Path, label: str, unlearn_config, steer: bool, probes: bool = True
) -> dict:
    """One unlearning run of the target, kept by `memo`."""
    return memo.run(
        label,
        {"config": unlearn_config.to_dict(), "steer": steer, "probes": probes},
        lambda: bench.unlearn(label, target_dir, unlearn_config, steer=steer, probes=probes),
    )


def _run_methods(
    bench: TofuBench,
    unlearn,
    memo: Memo,
    target_dir: Path,
    retrain_dir: Path,
    target: dict,
    retrain: dict,
    seeds: list[int],
) -> dict[str, dict]:
    """Every configured method's entry: retraining as measured, GRIN-NPO over the seeds, GRUN, the rest."""
    config = bench.config
    methods: dict[str, dict] = {}
    for name in config.methods:
        if name == "retrain":
            methods[name] = _retrain_entry(bench, retrain_dir, retrain)
        elif name == SEEDED_METHOD:
            runs = []
            for seed in seeds:
                run = unlearn(
                    f"{name} seed {seed}" if len(seeds) > 1 else name,
                    config.method_config(name, seed=seed),
                    steer=config.steers(name),
                )
                run["acceptance"] = acceptance_checks(
                    run["metrics"],
                    target["metrics"],
                    retrain["metrics"],
                    run.get("robustness"),
                    retrain.get("robustness"),
                )
                runs.append(run)
            methods[name] = aggregate_seeds(runs)
        elif name == "grun":
            grun_config, steer = config.grun_config(), config.steers(name)
            methods[name] = memo.run(
                name,
                {"config": grun_config.to_dict(), "steer": steer},
                partial(bench.grun, name, target_dir, grun_config, steer=steer),
            )
            methods[name]["base_forget"] = {
                k: v for k, v in target["metrics"].items() if k.startswith(("forget_", "mia_")) and v is not None
            }
        else:
            methods[name] = unlearn(name, config.method_config(name), steer=config.steers(name))
    return methods


def _retrain_entry(bench: TofuBench, retrain_dir: Path, retrain: dict) -> dict:
    """Retraining as a method: what training the retain model cost, and its metrics."""
    state, n_params = retrain_state(
        retrain_dir, bench.data.retrain, bench.train_config.batch_size, bench.train_config.lr
    )
    return {
        "wall_s": retrain["train_s"],
        "cached": retrain["cached"],
        "scoring_s": None,
        "peak_rss_mb": retrain["peak_rss_mb"],
        "state_bytes": state,
        "trainable_params": n_params,
        "config": retrain["config"],
        "metrics": retrain["metrics"],
        **({"robustness": retrain["robustness"]} if "robustness" in retrain else {}),
    }
