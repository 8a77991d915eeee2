"""`grin bench tofu`: GRIN against full-parameter unlearning and retraining, from one target model.

One run: train (or take from the model cache) the target model on a TOFU author subset and the
retrained model on its retain authors, with the same recipe; evaluate the retrained model first
(its forget truth ratios define forget quality), then the target; run every method from a fresh
copy of the target and evaluate each with the same code (`grin_core.evaluate`).

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

Privacy and robustness (issue 9):
- `calibration`: the non-member AUC level of the line, measured on the target
  (`grin_core.calibration.non_member_auc`): `grin_core.tofu.CALIBRATION_AUTHORS` TOFU authors of full.jsonl
  the target never saw (the first ones after the retain authors, forget authors skipped) against
  the suite's holdout. GRIN methods run the privacy schedule into `auc` +- `auc_margin`
  (`--no-schedule`: a fixed-length run that only records the per-epoch probes); full-parameter
  baselines run their fixed epochs with the probes recorded (`steer=False`). Either way each
  method's `probes` are the per-epoch curves (epoch 0 = before training) and `schedule` says what
  the run did (epochs run, push / repair epochs, whether it ended in band).
- `metrics` (every model): `evaluate_suite` with the retrained model's Min-K% AUC as PrivLeak's
  reference (the retrained model's own `privleak` is 0 by definition); `robustness`:
  `grin_core.probes.run_probes` with relearning, and next to each relearn number the retrained
  model's (`retrain_relearn_forget_rougeL` / `_prob`: the baseline - relearning teaches any model).
- `--seeds N`: GRIN-NPO runs N times (seeds seed .. seed+N-1, each from a fresh copy of the
  target); its entry carries `seeds` (one full entry per seed, with its own acceptance checks),
  `mean` and `std` (over seeds, of every number in metrics and robustness, and wall_s), and its
  top-level `metrics` / `robustness` / `wall_s` are the means, which the headline uses.

No record text is ever logged: progress lines carry stage names, counts, seconds and metrics.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from math import nan
from pathlib import Path

from benchmarks.recipes import RECIPES
from grin_core.methods import GRIN_OBJECTIVES

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = (*(f"grin-{m}" for m in GRIN_OBJECTIVES), *GRIN_OBJECTIVES, "grun", "retrain")
DEFAULT_METHODS = tuple(m for m in METHODS if m != "po")  # every method but full-parameter PO
SWEEPS = {"p": "p_percent", "sigma2": "sigma2"}  # --sweep name -> UnlearnConfig field (GRIN-NPO)
REPORTED = ("forget_rougeL", "retain_rougeL", "forget_truth_ratio", "forget_quality", "model_utility",
            "forget_keyword_acc", "mia_auc")
DEFAULT_AUTHORS = 20
DEFAULT_EPOCHS = 8  # full-parameter baselines; GRIN methods default to UnlearnConfig.max_epochs (the schedule's budget)
SEEDED_METHOD = "grin-npo"  # the method --seeds repeats

# GRIN keeps UnlearnConfig's defaults. Full-parameter runs move every weight, so they need a much
# smaller step; these were picked by the sweep in docs/benchmarks.md.
FULL_PARAMETER_LEARNING_RATE = {"npo": 1e-4, "graddiff": 1e-4, "po": 1e-4}

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run. `learning_rates` overrides a method's learning rate by method name."""

    split: str = "forget10"
    authors: int = DEFAULT_AUTHORS
    methods: tuple[str, ...] = DEFAULT_METHODS
    recipe: str = "cpu"
    epochs: int | None = None  # None: DEFAULT_EPOCHS for full-parameter, UnlearnConfig's default for GRIN
    learning_rates: Mapping[str, float] = field(default_factory=dict)
    sweeps: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    seed: int = 0
    seeds: int = 1  # GRIN-NPO runs (seeds seed .. seed+seeds-1)
    schedule: bool = True  # GRIN methods steer with the privacy schedule; False = fixed epochs (ablation)
    probes: bool = True  # robustness probes (run_probes with relearning) on every model
    data_dir: Path | None = None
    cache_dir: Path = REPO_ROOT / ".grin" / "cache" / "models"

    def __post_init__(self) -> None:
        unknown = [m for m in (*self.methods, *self.learning_rates) if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        if not self.methods:
            raise ValueError("no methods to run")
        if "retrain" in self.learning_rates:
            raise ValueError("retrain follows the recipe; it has no unlearning learning rate")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.seeds < 1:
            raise ValueError("seeds must be >= 1")
        for name, values in self.sweeps.items():
            if name not in SWEEPS:
                raise ValueError(f"can sweep {sorted(SWEEPS)}, not {name!r}")
            if not values:
                raise ValueError(f"--sweep {name} needs at least one value")
        if self.data_dir is None:
            # imported here, not at the top: `grin --help` reads DEFAULT_METHODS
            from infra.settings import get_settings

            object.__setattr__(self, "data_dir", get_settings().tofu_dir)

    def method_config(self, name: str, **overrides):
        """The UnlearnConfig of a method: GRIN = UnlearnConfig defaults (max_epochs: the privacy
        schedule's budget), full-parameter = its own lr and DEFAULT_EPOCHS; `--epochs` sets both."""
        from grin_core.unlearn_config import UnlearnConfig

        grin = name.startswith("grin-")
        objective = name.removeprefix("grin-")
        default_lr = UnlearnConfig.learning_rate if grin else FULL_PARAMETER_LEARNING_RATE[objective]
        epochs = self.epochs if self.epochs is not None else (UnlearnConfig.epochs if grin else DEFAULT_EPOCHS)
        budget = {"max_epochs": self.epochs} if self.epochs is not None and grin else {}
        values = {"method": objective, "full_parameter": not grin, "epochs": epochs, "seed": self.seed, **budget,
                  "learning_rate": self.learning_rates.get(name, default_lr), **overrides}
        return UnlearnConfig(**values)

    def grun_config(self, **overrides):
        """GRUN's config: GrunConfig's defaults (the authors'); `--epochs` sets its budget as GRIN's."""
        from grin_core.grun_config import GrunConfig

        budget = {"epochs": self.epochs, "max_epochs": self.epochs} if self.epochs is not None else {}
        lr = {"learning_rate": self.learning_rates["grun"]} if "grun" in self.learning_rates else {}
        return GrunConfig(**{"seed": self.seed, **budget, **lr, **overrides})

    def steers(self, name: str) -> bool:
        """Whether a method runs the privacy schedule (GRIN and GRUN, unless --no-schedule) or only records it."""
        return self.schedule and (name.startswith("grin-") or name == "grun")


def _device() -> str | None:
    import torch

    return "cuda" if torch.cuda.is_available() else None


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


def _reported(metrics: Mapping[str, float]) -> dict:
    """The issue's metric keys first (None where the suite could not give one), then the rest."""
    return {**{k: metrics.get(k) for k in REPORTED}, **{k: v for k, v in sorted(metrics.items()) if k not in REPORTED}}


def _seconds(started: float) -> float:
    return round(time.perf_counter() - started, 2)


class TofuBench:
    """The state one run builds up: data, the two trained models, the retrained truth ratios."""

    def __init__(self, config: BenchConfig, log: Log) -> None:
        from grin_core.model import TinyLlamaConfig
        from grin_core.tofu import TofuSubset, load_eval_suite, load_tofu
        from grin_core.train import TrainConfig

        self.config, self.log = config, log
        recipe = RECIPES[config.recipe]
        self.model_config = TinyLlamaConfig(**recipe.model)
        self.train_config = TrainConfig(**{"seed": config.seed, **recipe.train})
        self.subset = TofuSubset(config.authors, config.split, recipe.n_general)
        self.data = load_tofu(self.subset, config.data_dir)
        self.suite = load_eval_suite(self.subset, config.data_dir)
        if recipe.eval_retain is not None and self.suite.retain:
            self.suite.retain = self.suite.retain[: recipe.eval_retain]
        self.unlearn_retain = self.data.retain + self.data.general  # what the retrained model learns
        self.device = _device()
        self.retrained_ratios: list[float] | None = None
        self.reference_auc: float | None = None  # the retrained model's Min-K% AUC: PrivLeak's reference
        self.target_auc: float = 0.5  # the calibrated non-member level, set by calibrate()
        self.retrain_relearn: dict[str, float] = {}  # the retrained model's relearn numbers: the baseline
        log(f"data: {config.split}, {config.authors} authors -> {len(self.data.forget)} forget QA "
            f"({self.subset.n_forget} authors), {len(self.data.retain)} retain QA, {len(self.data.general)} "
            f"general QA; eval: " + ", ".join(f"{part} {len(rows)}" for part, rows in vars(self.suite).items() if rows))

    def data_summary(self) -> dict:
        from grin_core.train import records_sha256

        return {
            "forget_authors": list(self.subset.forget_authors),
            "retain_authors": [self.subset.retain_authors[0], self.subset.retain_authors[-1]],
            "n_forget": len(self.data.forget),
            "n_retain": len(self.data.retain),
            "n_general": len(self.data.general),
            "train_sha256": records_sha256(self.data.train),
            "retrain_sha256": records_sha256(self.data.retrain),
            "eval": {part: len(rows) for part, rows in vars(self.suite).items() if rows},
        }

    def train(self, name: str, records: Sequence[Mapping]) -> tuple[Path, dict]:
        """Train (or reuse) a model; `train_s` is the original training time either way."""
        from benchmarks.peak_rss import PeakRss
        from grin_core.checkpoint import load_grin_config
        from grin_core.train import train_or_load

        cache = Path(self.config.cache_dir)
        before = {p.name for p in cache.iterdir()} if cache.is_dir() else set()
        self.log(f"{name}: training on {len(records)} QA (or reusing the cache in {cache})")
        started = time.perf_counter()
        with PeakRss() as rss:
            path = train_or_load(records, self.model_config, self.train_config, cache, progress=False)
        cached = path.name in before
        recorded = load_grin_config(path)
        history = recorded.get("history", [])
        summary = {
            "train_s": recorded.get("train_seconds"),
            "cached": cached,
            "this_run_s": _seconds(started),
            "peak_rss_mb": None if cached else rss.mb,
            "epochs": len(history),
            "final_loss": history[-1]["loss"] if history else None,
            "n_records": len(records),
            "checkpoint": path.name,
            "config": {"model": self.model_config.to_dict(), "train": self.train_config.to_dict()},
        }
        self.log(f"{name}: {'cached' if cached else 'trained'} - {summary['epochs']} epochs, "
                 f"final loss {summary['final_loss']:.3f}, train_s {summary['train_s']}")
        return path, summary

    def load(self, checkpoint: Path):
        from grin_core.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint, device=self.device)

    def calibrate(self, model, tokenizer) -> dict:
        """The non-member AUC level on the target: calibration authors' QA against the suite's holdout."""
        from grin_core.calibration import non_member_auc
        from grin_core.tofu import load_calibration

        authors = list(self.subset.calibration_authors())
        records = load_calibration(self.subset, self.config.data_dir)
        if not records or not self.suite.holdout:
            raise ValueError("calibration needs unseen TOFU authors and the suite's holdout")
        started = time.perf_counter()
        auc = non_member_auc(model, tokenizer, records, self.suite.holdout)
        self.target_auc = auc
        self.log(f"calibration: non-member AUC {auc:.3f} on the target ({len(records)} QA of authors "
                 f"{authors[0]}-{authors[-1]} vs {len(self.suite.holdout)} holdout) in {_seconds(started):.0f} s")
        return {"auc": auc, "n_records": len(records), "authors": authors, "n_holdout": len(self.suite.holdout)}

    def evaluate(self, name: str, model, tokenizer) -> tuple[dict, float, list[float] | None]:
        from grin_core.evaluate import evaluate_suite

        started = time.perf_counter()
        result = evaluate_suite(model, tokenizer, self.suite, retrained_forget_truth_ratios=self.retrained_ratios,
                                reference_auc=self.reference_auc, progress=False)
        seconds = _seconds(started)
        m = {k: v for k, v in result.metrics.items() if v is not None}
        self.log(f"{name}: evaluated in {seconds:.0f} s - forget ROUGE-L {m.get('forget_rougeL', nan):.3f}, "
                 f"retain ROUGE-L {m.get('retain_rougeL', nan):.3f}, forget quality "
                 f"{m.get('forget_quality', nan):.3g}, model utility {m.get('model_utility', nan):.3f}, "
                 f"MIA AUC {m.get('mia_auc', nan):.3f}, privleak {m.get('privleak', nan):.1f}")
        return _reported(m), seconds, result.per_example.get("forget_truth_ratio")

    def robustness(self, name: str, model, tokenizer) -> tuple[dict, float | None]:
        """run_probes with relearning (same seed, so the same relearn half, for every model), with the
        retrained model's relearn numbers beside each method's."""
        if not self.config.probes:
            return {}, None
        from grin_core.probes import run_probes

        started = time.perf_counter()
        out = run_probes(model, tokenizer, self.suite, relearn=True, seed=self.config.seed,
                         **RECIPES[self.config.recipe].probe_settings)
        seconds = _seconds(started)
        out = {k: v for k, v in sorted(out.items()) if v is not None}
        out.update({f"retrain_{k}": v for k, v in self.retrain_relearn.items()})
        self.log(f"{name}: probes in {seconds:.0f} s - paraphrase ROUGE-L {out.get('forget_paraphrase_rougeL', nan):.3f}, "
                 f"best-of-8 {out.get('forget_sampled_best_rougeL', nan):.3f}, formats max "
                 f"{out.get('forget_format_max_rougeL', nan):.3f}, int4 {out.get('forget_int4_rougeL', nan):.3f}, "
                 f"relearned {out.get('relearn_forget_rougeL', nan):.3f}")
        return out, seconds

    def fresh(self, checkpoint: Path):
        """A fresh copy of the target for one method; on CUDA the peak counters restart with it (the
        peak of this method alone, the loaded target included)."""
        model, tokenizer = self.load(checkpoint)
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        return model, tokenizer

    def warm_up(self, checkpoint: Path) -> None:
        """One untimed fwd+bwd pass, so the first method's timings do not include the device's start-up
        (CUDA context and kernel loading: 13 s of the first GRI scoring on an H100, 0.8 s after)."""
        from grin_core.pass_timing import forward_backward_seconds

        model, tokenizer = self.load(checkpoint)
        forward_backward_seconds(model, tokenizer, self.data.forget[:16], batch_size=16)

    def unlearn(self, name: str, target: Path, unlearn_config, steer: bool, probes: bool = True) -> dict:
        """One unlearning method from a fresh copy of the target, timed, measured and evaluated.

        The per-epoch privacy probes run either way (`steer` False: recorded only); their
        likelihood passes are inside `wall_s`, as a deployed schedule would pay them."""
        from benchmarks.peak_rss import PeakRss
        from grin_core.pass_timing import forward_backward_seconds
        from grin_core.unlearn import unlearn

        model, tokenizer = self.fresh(target)
        self.log(f"{name}: unlearning ({unlearn_config.method}, "
                 f"{'full-parameter' if unlearn_config.full_parameter else f'p={unlearn_config.p_percent}%'}, "
                 f"lr {unlearn_config.learning_rate:g}, seed {unlearn_config.seed}, "
                 + (f"privacy schedule to AUC {self.target_auc:.3f} +- {unlearn_config.auc_margin:g} within "
                    f"{unlearn_config.max_epochs} epochs)" if steer else f"{unlearn_config.epochs} epochs)"))
        with PeakRss() as rss:
            started = time.perf_counter()
            result = unlearn(model, tokenizer, self.data.forget, self.unlearn_retain, unlearn_config,
                             holdout_records=self.suite.holdout, target_auc=self.target_auc, steer=steer)
            wall_s = _seconds(started)
        entry = {
            "wall_s": wall_s,
            "scoring_s": result.timings.get("scoring_s"),
            "peak_rss_mb": rss.mb,
            "peak_rss_stage_only": rss.stage_only,
            "state_bytes": result.state_bytes.to_dict(),
            "trainable_params": result.trainable_params,
            "timings": result.timings,
            "config": unlearn_config.to_dict(),
        }
        if result.mask is not None:
            fresh, _ = self.load(target)
            fwd_bwd = forward_backward_seconds(fresh, tokenizer, [*self.data.forget, *self.unlearn_retain],
                                               batch_size=unlearn_config.scoring_batch_size,
                                               max_length=unlearn_config.max_length)
            del fresh
            entry["fwd_bwd_s"] = round(fwd_bwd, 3)
            entry["scoring_over_fwd_bwd"] = round(entry["scoring_s"] / fwd_bwd, 3)
            entry["mask"] = {k: result.mask_stats[k] for k in ("k", "n_eligible", "p_percent")}
            entry["mask"]["by_kind"] = {kind: group["selected"] for kind, group in result.mask_stats["by_kind"].items()}
        self.log(f"{name}: {wall_s:.1f} s (" + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
                 + f"), state {result.state_bytes.total / 2**20:.1f} MiB"
                 + (f", fwd+bwd {entry['fwd_bwd_s']:.1f} s" if "fwd_bwd_s" in entry else ""))
        entry["history"] = result.history
        entry["probes"] = result.probes
        entry["schedule"] = schedule_summary(result.probes, self.target_auc, unlearn_config, steer)
        entry["epochs_run"] = entry["schedule"]["epochs_run"]
        entry["metrics"], entry["eval_s"], _ = self.evaluate(name, model, tokenizer)
        if probes:
            entry["robustness"], entry["probes_s"] = self.robustness(name, model, tokenizer)
        return entry


    def grun(self, name: str, target: Path, grun_config, steer: bool) -> dict:
        """GRUN from a fresh copy of the target, measured as GRIN is; then a second request (the first
        retain author) on top of it, and the first forget set measured again (`sequential`).

        `base_forget`: the forget numbers of the base weights alone (the target's): what anyone who
        holds them gets back by dropping the intervention (grin_core/grun.py, THREAT_MODEL)."""
        from benchmarks.peak_rss import PeakRss
        from grin_core.grun import THREAT_MODEL
        from grin_core.grun_train import grun_unlearn

        model, tokenizer = self.fresh(target)
        self.log(f"{name}: unlearning (gated intervention, rank {grun_config.rank}, {grun_config.gate} gate, "
                 f"lr {grun_config.learning_rate:g}, seed {grun_config.seed}, "
                 + (f"privacy schedule to AUC {self.target_auc:.3f} within {grun_config.max_epochs} epochs)"
                    if steer else f"{grun_config.epochs} epochs)"))
        with PeakRss() as rss:
            started = time.perf_counter()
            result = grun_unlearn(model, tokenizer, self.data.forget, self.unlearn_retain, grun_config,
                                  holdout_records=self.suite.holdout, target_auc=self.target_auc, steer=steer)
            wall_s = _seconds(started)
        entry = {
            "wall_s": wall_s, "scoring_s": None, "peak_rss_mb": rss.mb, "peak_rss_stage_only": rss.stage_only,
            "state_bytes": result.state_bytes.to_dict(), "trainable_params": result.trainable_params,
            "intervention_bytes": sum(p.numel() * p.element_size() for p in result.module.parameters()),
            "layers": list(result.module.layers), "timings": result.timings, "config": grun_config.to_dict(),
            "base_weights_changed": False, "threat_model": THREAT_MODEL,
        }
        self.log(f"{name}: {wall_s:.1f} s, {result.trainable_params} intervention parameters, "
                 f"state {result.state_bytes.total / 2**20:.1f} MiB")
        entry["history"], entry["probes"] = result.history, result.probes
        entry["schedule"] = schedule_summary(result.probes, self.target_auc, grun_config, steer)
        entry["epochs_run"] = entry["schedule"]["epochs_run"]
        entry["metrics"], entry["eval_s"], _ = self.evaluate(name, model, tokenizer)
        entry["robustness"], entry["probes_s"] = self.robustness(name, model, tokenizer)
        entry["sequential"] = self.second_request(name, model, tokenizer, grun_config, steer)
        return entry

    def second_request(self, name: str, model, tokenizer, grun_config, steer: bool) -> dict:
        """A second GRUN request (the first retain author's QA) on the unlearned model; the first forget
        set's numbers after it. Retain metrics then include the second author: they are not comparable."""
        from grin_core.grun_train import grun_unlearn

        author = self.subset.retain_authors[0]
        second = [r for r in self.data.retain if r.get("author_id") == author]
        rest = [r for r in self.unlearn_retain if r.get("author_id") != author]
        started = time.perf_counter()
        grun_unlearn(model, tokenizer, second, rest, grun_config, holdout_records=self.suite.holdout,
                     target_auc=self.target_auc, steer=steer)
        wall_s = _seconds(started)
        metrics, _, _ = self.evaluate(f"{name} after a second request", model, tokenizer)
        keys = [k for k in metrics if k.startswith(("forget_", "mia_", "privleak"))]
        return {"second_author": author, "n_second": len(second), "wall_s": wall_s,
                "first_forget_after_second": {k: metrics[k] for k in keys}}


def retrain_state(checkpoint: Path, records: Sequence[Mapping], batch_size: int, lr: float) -> tuple[dict, int]:
    """(state bytes, parameters) of retraining from scratch: weights, gradients and AdamW moments,
    counted from the tensors after one optimizer step on one batch (a plain training loop's peak)."""
    import torch

    from grin_core.checkpoint import load_checkpoint
    from grin_core.data import qa_collator, qa_dataset
    from grin_core.state_bytes import measure_state

    model, tokenizer = load_checkpoint(checkpoint)
    model.train()
    batch = qa_collator(tokenizer)(qa_dataset(records[:batch_size], tokenizer).select_columns(
        ["input_ids", "attention_mask", "labels"]).to_list())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model(**batch).loss.backward()
    optimizer.step()
    return measure_state(model, optimizer).to_dict(), sum(p.numel() for p in model.parameters())


def schedule_summary(probes: Sequence[Mapping], target_auc: float, unlearn_config, steer: bool) -> dict:
    """What the privacy schedule did in one run: the band, epochs run, push / repair epochs, where it ended.

    A probe's `phase` is the phase of the epoch it closes (epoch 0: before training)."""
    margin = unlearn_config.auc_margin
    budget = unlearn_config.max_epochs if steer else unlearn_config.epochs
    after = list(probes[1:])
    last = probes[-1] if probes else None  # after a restore: the epoch the model went back to
    run = max((e["epoch"] for e in probes), default=budget)
    low, high = target_auc - 2 * margin, target_auc + margin  # what the schedule keeps (privacy_schedule.py)
    return {
        "steer": steer,
        "target_auc": target_auc,
        "band": [round(low, 4), round(high, 4)],
        "budget_epochs": budget,
        "epochs_run": run,
        "stopped_early": bool(last) and run < budget,
        "restored_epoch": last["epoch"] if last and last.get("phase") == "restored" else None,
        "push_epochs": sum(1 for e in after if e.get("phase") == "push"),
        "repair_epochs": sum(1 for e in after if e.get("phase") == "repair"),
        "final_mia_auc": last["mia_auc"] if last else None,
        "ended_in_band": None if last is None else low <= last["mia_auc"] <= high,
    }


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
    entry = {k: v for k, v in runs[0].items()}
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


# The acceptance on GRIN-NPO (the mean over seeds in the headline; each seed has its own).
ACCEPTANCE = ("grin_npo_mia_auc_within_0.1_retrain", "grin_npo_forget_quality_above_target",
              "grin_npo_forget_quality_ge_npo", "grin_npo_utility_ge_0.95_target",
              "grin_npo_retain_rougeL_ge_0.9_target", "grin_npo_forget_rougeL_within_0.1_retrain")


def acceptance_checks(g: Mapping, target: Mapping, retrain: Mapping, npo: Mapping | None) -> dict:
    """The issue's acceptance targets for one set of GRIN-NPO metrics (`npo`: full-parameter NPO's)."""
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
    """The ratios the issue asks for and whether each target is met (None when not measurable).

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
    """The issue's acceptance in one place: each target on the mean, all met, and per seed."""
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
        "targets": {name: ok for name, ok in zip(ACCEPTANCE, met)},
        "met": None if None in met else all(met),
        "per_seed": per_seed,
    }


def run_tofu_bench(config: BenchConfig, log: Log = lambda line: None, command: str | None = None) -> dict:
    """Run the benchmark; return the JSON-ready report (see the module docstring)."""
    import datasets
    from transformers.utils import logging as transformers_logging

    from grin_core.metrics.mia import privleak

    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    started = time.perf_counter()
    load_before = load_average()
    bench = TofuBench(config, log)
    target_dir, target = bench.train("target", bench.data.train)
    retrain_dir, retrain = bench.train("retrain", bench.data.retrain)

    model, tokenizer = bench.load(retrain_dir)
    retrain["metrics"], retrain["eval_s"], bench.retrained_ratios = bench.evaluate("retrain", model, tokenizer)
    if not bench.retrained_ratios:
        raise ValueError("the retrained model has no forget truth ratios; forget quality needs them")
    # The retrained model against itself: forget quality 1 and PrivLeak 0 by construction.
    retrain["metrics"]["forget_quality"] = 1.0
    bench.reference_auc = retrain["metrics"].get("mia_mink_auc")
    if bench.reference_auc is not None:
        retrain["metrics"]["privleak"] = privleak(bench.reference_auc, bench.reference_auc)
        retrain["metrics"]["privleak_reference_auc"] = bench.reference_auc
    if config.probes:
        retrain["robustness"], retrain["probes_s"] = bench.robustness("retrain", model, tokenizer)
        bench.retrain_relearn = {k: v for k, v in retrain["robustness"].items() if k.startswith("relearn_")}
    model, tokenizer = bench.load(target_dir)
    target["metrics"], target["eval_s"], _ = bench.evaluate("target", model, tokenizer)
    calibration = bench.calibrate(model, tokenizer)
    if config.probes:
        target["robustness"], target["probes_s"] = bench.robustness("target", model, tokenizer)
    del model

    bench.warm_up(target_dir)
    seeds = list(range(config.seed, config.seed + config.seeds))
    methods: dict[str, dict] = {}
    for name in config.methods:
        if name == "retrain":
            state, n_params = retrain_state(retrain_dir, bench.data.retrain, bench.train_config.batch_size,
                                            bench.train_config.lr)
            methods[name] = {
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
            continue
        if name == SEEDED_METHOD:
            runs = []
            for seed in seeds:
                run = bench.unlearn(f"{name} seed {seed}" if len(seeds) > 1 else name, target_dir,
                                    config.method_config(name, seed=seed), steer=config.steers(name))
                run["acceptance"] = acceptance_checks(run["metrics"], target["metrics"], retrain["metrics"], None)
                runs.append(run)
            methods[name] = aggregate_seeds(runs)
            continue
        if name == "grun":
            methods[name] = bench.grun(name, target_dir, config.grun_config(), steer=config.steers(name))
            methods[name]["base_forget"] = {k: v for k, v in target["metrics"].items()
                                            if k.startswith(("forget_", "mia_")) and v is not None}
            continue
        methods[name] = bench.unlearn(name, target_dir, config.method_config(name), steer=config.steers(name))
    if SEEDED_METHOD in methods and "npo" in methods:  # each seed against full-parameter NPO too
        for run in methods[SEEDED_METHOD]["seeds"]:
            run["acceptance"] = acceptance_checks(run["metrics"], target["metrics"], retrain["metrics"],
                                                  methods["npo"]["metrics"])

    sweeps: dict[str, dict[str, dict]] = {}
    for param, values in config.sweeps.items():
        for value in values:
            label = f"grin-npo {param}={value:g}"
            entry = bench.unlearn(label, target_dir, config.method_config("grin-npo", **{SWEEPS[param]: value}),
                                  steer=config.steers("grin-npo"), probes=False)
            sweeps.setdefault(param, {})[f"{value:g}"] = entry

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
    }
    report["ratios"], report["targets"] = headline(report)
    report["acceptance"] = acceptance_summary(report)
    report["load_average"] = {"start": load_before, "end": load_average()}
    report["total_wall_s"] = _seconds(started)
    log(f"done in {report['total_wall_s']:.0f} s; load average {load_before} -> {report['load_average']['end']}")
    return report
