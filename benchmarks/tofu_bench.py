"""The state one benchmark run builds up (`TofuBench`): the data, the trained target and retrained
models, and each method run from a fresh copy of the target, evaluated with the same code.
What each number means: benchmarks/tofu.py's docstring."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from math import nan
from pathlib import Path

from benchmarks.recipes import RECIPES, Recipe
from benchmarks.tofu_config import REPO_ROOT, BenchConfig, Log

REPORTED = (
    "forget_rougeL",
    "retain_rougeL",
    "forget_truth_ratio",
    "forget_quality",
    "model_utility",
    "forget_keyword_acc",
    "mia_auc",
)


def _device() -> str | None:
    import torch

    return "cuda" if torch.cuda.is_available() else None


def _reported(metrics: Mapping[str, float]) -> dict:
    """The headline metric keys first (None where the suite could not give one), then the rest."""
    return {**{k: metrics.get(k) for k in REPORTED}, **{k: v for k, v in sorted(metrics.items()) if k not in REPORTED}}


def seconds_since(started: float) -> float:
    return round(time.perf_counter() - started, 2)


class TofuBench:
    """The state one run builds up: data, the two trained models, the retrained truth ratios."""

    def __init__(self, config: BenchConfig, log: Log) -> None:
        from grin_core.data.tofu import TofuSubset, load_eval_suite, load_tofu

        self.config, self.log = config, log
        self.recipe = recipe = RECIPES[config.recipe]
        self.model_config, self.train_config = _configs(recipe, config.seed)
        self._base_dir: Path | None = None
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
        # never-seen authors' QA: every evaluated model's attack levels, relearning level, and profile matching
        self.calibration_records: list | None = None
        if self.subset.calibration_authors():
            from grin_core.data.tofu import load_calibration

            records = load_calibration(self.subset, config.data_dir)[: recipe.eval_calibration]
            self.calibration_records = self.suite.calibration = records
        self.retrain_relearn: dict[str, float] = {}  # the retrained model's relearn numbers: the baseline
        log(
            f"data: {config.split}, {config.authors} authors -> {len(self.data.forget)} forget QA "
            f"({self.subset.n_forget} authors), {len(self.data.retain)} retain QA, {len(self.data.general)} "
            f"general QA; eval: " + ", ".join(f"{part} {len(rows)}" for part, rows in vars(self.suite).items() if rows)
        )

    def data_summary(self) -> dict:
        from grin_core.models.train import records_sha256

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
        from grin_core.models.checkpoint import load_grin_config

        cache = Path(self.config.cache_dir)
        if self.recipe.base is not None:
            self.base_dir()  # dequantised (once) before the clock starts: it is no part of training
        before = {p.name for p in cache.iterdir()} if cache.is_dir() else set()
        how = "training" if self.recipe.base is None else "fine-tuning the base"
        self.log(f"{name}: {how} on {len(records)} QA (or reusing the cache in {cache})")
        started = time.perf_counter()
        with PeakRss() as rss:
            path = self.build(records, cache)
        cached = path.name in before
        recorded = load_grin_config(path)
        history = recorded.get("history", [])
        peak_cuda = recorded.get("peak_cuda_bytes")
        summary = {
            "train_s": recorded.get("train_seconds"),
            "cached": cached,
            "this_run_s": seconds_since(started),
            "peak_rss_mb": None if cached else rss.mb,
            "peak_cuda_mb": None if peak_cuda is None else round(peak_cuda / 2**20, 1),
            "epochs": len(history),
            "final_loss": history[-1]["loss"] if history else None,
            "n_records": len(records),
            "checkpoint": path.name,
            "throughput": self.throughput(path, records, history, recorded.get("device", "cpu")),
            "config": self.model_recipe(),
        }
        mfu = summary["throughput"].get("mfu")
        self.log(
            f"{name}: {'cached' if cached else 'trained'} - {summary['epochs']} epochs, "
            f"final loss {summary['final_loss']:.3f}, train_s {summary['train_s']}, "
            f"{summary['throughput'].get('tokens_per_s', 0):.0f} tokens/s"
            + (f", MFU {mfu:.1%}" if mfu is not None else "")
        )
        return path, summary

    def build(self, records: Sequence[Mapping], cache: Path) -> Path:
        """The recipe's model of `records`: trained from scratch, or its base fine-tuned (both cached)."""
        if self.recipe.base is None:
            from grin_core.models.train import train_or_load

            return train_or_load(records, self.model_config, self.train_config, cache, progress=False)
        from grin_core.models.finetune import finetune_or_load

        return finetune_or_load(records, self.base_dir(), self.train_config, cache, progress=False)

    def base_dir(self) -> Path:
        """The recipe's base as a checkpoint: a GGUF dequantised once into the model cache (by its sha256)."""
        if self._base_dir is None:
            from grin_core.models.gguf_base import base_checkpoint

            source = Path(self.recipe.base)
            source = source if source.is_absolute() else REPO_ROOT / source
            started = time.perf_counter()
            self._base_dir = base_checkpoint(source, self.config.cache_dir, self.recipe.prompt_template)
            self.log(f"base: {source.name} -> {self._base_dir.name} in {seconds_since(started):.0f} s")
        return self._base_dir

    def model_recipe(self) -> dict:
        """How the models were built: the from-scratch model and schedule, or the base and its fine-tuning."""
        if self.recipe.base is None:
            return {"model": self.model_config.to_dict(), "train": self.train_config.to_dict()}
        return {
            "base": self.recipe.base,
            "base_checkpoint": self.base_dir().name,
            "finetune": self.train_config.to_dict(),
        }

    def throughput(
        self, checkpoint: Path, records: Sequence[Mapping], history: Sequence[Mapping], device_name: str
    ) -> dict:
        """Tokens/s and MFU of the recorded training (throughput.py), on the device that trained it."""
        from benchmarks.throughput import matmul_params, training_throughput
        from grin_core.data.qa import qa_dataset

        model, tokenizer = self.load(checkpoint)
        lengths = qa_dataset(records, tokenizer, max_length=self.train_config.max_length)["length"]
        return training_throughput(
            history,
            lengths,
            matmul_params(model),
            model.config.num_hidden_layers,
            model.config.hidden_size,
            device_name,
            self.train_config.batch_size,
        )

    def load(self, checkpoint: Path):
        from grin_core.models.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint, device=self.device)

    def calibrate(self, model, tokenizer, retrained_auc: float | None) -> dict:
        """The non-member AUC level on the target: calibration authors' QA against the suite's holdout.

        With all 200 authors trained no TOFU author is left unseen, so the level is the retrained
        model's forget-vs-holdout AUC (`source: retrained`): an oracle no deployment has, named so."""
        from grin_core.evaluation.calibration import non_member_auc

        if not self.suite.holdout:
            raise ValueError("calibration needs the suite's holdout")
        authors = list(self.subset.calibration_authors())
        if not authors:
            if retrained_auc is None:
                raise ValueError("no unseen TOFU authors to calibrate on, and no retrained model's MIA AUC")
            self.target_auc = retrained_auc
            self.log(
                f"calibration: no unseen TOFU authors at {self.config.authors}; the level is the retrained "
                f"model's forget-vs-holdout AUC {retrained_auc:.3f}"
            )
            return {
                "auc": retrained_auc,
                "source": "retrained",
                "n_records": len(self.data.forget),
                "authors": [],
                "n_holdout": len(self.suite.holdout),
            }
        records = self.calibration_records
        started = time.perf_counter()
        auc = non_member_auc(model, tokenizer, records, self.suite.holdout)
        self.target_auc = auc
        self.log(
            f"calibration: non-member AUC {auc:.3f} on the target ({len(records)} QA of authors "
            f"{authors[0]}-{authors[-1]} vs {len(self.suite.holdout)} holdout) in {seconds_since(started):.0f} s"
        )
        return {
            "auc": auc,
            "source": "unseen authors",
            "n_records": len(records),
            "authors": authors,
            "n_holdout": len(self.suite.holdout),
        }

    def evaluate(self, name: str, model, tokenizer) -> tuple[dict, float, list[float] | None]:
        from grin_core.evaluation.evaluate import evaluate_suite

        started = time.perf_counter()
        result = evaluate_suite(
            model,
            tokenizer,
            self.suite,
            retrained_forget_truth_ratios=self.retrained_ratios,
            reference_auc=self.reference_auc,
            progress=False,
        )
        seconds = seconds_since(started)
        m = {k: v for k, v in result.metrics.items() if v is not None}
        self.log(
            f"{name}: evaluated in {seconds:.0f} s - forget ROUGE-L {m.get('forget_rougeL', nan):.3f}, "
            f"retain ROUGE-L {m.get('retain_rougeL', nan):.3f}, forget quality "
            f"{m.get('forget_quality', nan):.3g}, model utility {m.get('model_utility', nan):.3f}, "
            f"MIA AUC {m.get('mia_auc', nan):.3f}, privleak {m.get('privleak', nan):.1f}"
        )
        return _reported(m), seconds, result.per_example.get("forget_truth_ratio")

    def robustness(self, name: str, model, tokenizer) -> tuple[dict, float | None]:
        """run_probes with relearning (same seed, so the same relearn half, for every model), with the
        retrained model's relearn numbers beside each method's."""
        if not self.config.probes:
            return {}, None
        from grin_core.evaluation.probes import run_probes

        started = time.perf_counter()
        settings = {k: v for k, v in RECIPES[self.config.recipe].probe_settings.items() if k != "relearn_sweep"}
        out = run_probes(model, tokenizer, self.suite, relearn=True, seed=self.config.seed, **settings)
        seconds = seconds_since(started)
        out = {k: v for k, v in sorted(out.items()) if v is not None}
        out["relearn_sweep"] = self.relearn_sweep(model, tokenizer)
        out.update({f"retrain_{k}": v for k, v in self.retrain_relearn.items()})
        self.log(
            f"{name}: probes in {seconds:.0f} s - "
            f"paraphrase ROUGE-L {out.get('forget_paraphrase_rougeL', nan):.3f}, "
            f"best-of-8 {out.get('forget_sampled_best_rougeL', nan):.3f}, formats max "
            f"{out.get('forget_format_max_rougeL', nan):.3f}, int4 {out.get('forget_int4_rougeL', nan):.3f}, "
            f"relearned {out.get('relearn_forget_rougeL', nan):.3f}"
        )
        return out, seconds

    def relearn_sweep(self, model, tokenizer) -> dict[str, dict[str, float]]:
        """The relearning attack at each (steps, learning rate) of the recipe's sweep, same seed and half:
        {"<steps>@<lr>": {rougeL, prob, seconds}}; the retrained model under the same attack is the control."""
        from grin_core.evaluation.probes import relearn_probe

        settings = RECIPES[self.config.recipe].probe_settings
        out = {}
        for steps, lr in settings["relearn_sweep"]:
            started = time.perf_counter()
            measured = relearn_probe(
                model,
                tokenizer,
                self.suite.forget,
                steps=steps,
                lr=lr,
                seed=self.config.seed,
                max_new_tokens=settings["max_new_tokens"],
            )
            out[f"{steps}@{lr:g}"] = {
                "rougeL": measured["relearn_forget_rougeL"],
                "prob": measured["relearn_forget_prob"],
                "seconds": seconds_since(started),
            }
        return out

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
        from grin_core.scoring.pass_timing import forward_backward_seconds

        model, tokenizer = self.load(checkpoint)
        forward_backward_seconds(model, tokenizer, self.data.forget[:16], batch_size=16)

    def unlearn(
        self, name: str, target: Path, unlearn_config, steer: bool, probes: bool = True, relearn_sweep: bool = False
    ) -> dict:
        """One unlearning method from a fresh copy of the target, timed, measured and evaluated.

        The per-epoch privacy probes run either way (`steer` False: recorded only); their
        likelihood passes are inside `wall_s`, as a deployed schedule would pay them."""
        from benchmarks.peak_rss import PeakRss
        from grin_core.unlearning.unlearn import unlearn

        model, tokenizer = self.fresh(target)
        self.log(f"{name}: unlearning ({run_description(unlearn_config, steer, self.target_auc)})")
        with PeakRss() as rss:
            started = time.perf_counter()
            result = unlearn(
                model,
                tokenizer,
                self.data.forget,
                self.unlearn_retain,
                unlearn_config,
                holdout_records=self.suite.holdout,
                target_auc=self.target_auc,
                steer=steer,
                calibration_records=self.calibration_records,
            )
            wall_s = seconds_since(started)
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
            entry.update(self.mask_cost(target, tokenizer, result, unlearn_config))
        self.log(
            f"{name}: {wall_s:.1f} s ("
            + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
            + f"), state {result.state_bytes.total / 2**20:.1f} MiB"
            + (f", fwd+bwd {entry['fwd_bwd_s']:.1f} s" if "fwd_bwd_s" in entry else "")
        )
        entry["history"] = result.history
        entry["probes"] = result.probes
        entry["levels"] = result.levels
        entry["flops"] = result.flops
        entry["schedule"] = schedule_summary(result.probes, self.target_auc, unlearn_config, steer)
        entry["epochs_run"] = entry["schedule"]["epochs_run"]
        entry["metrics"], entry["eval_s"], _ = self.evaluate(name, model, tokenizer)
        if probes:
            entry["robustness"], entry["probes_s"] = self.robustness(name, model, tokenizer)
        elif relearn_sweep:
            entry["relearn_sweep"] = self.relearn_sweep(model, tokenizer)
        return entry

    def mask_cost(self, target: Path, tokenizer, result, unlearn_config) -> dict:
        """A masked run's scoring against one forward+backward pass over the same records (timed on a
        fresh copy of the target) and the mask's size, overall and by kind of weight."""
        from grin_core.scoring.pass_timing import forward_backward_seconds

        fresh, _ = self.load(target)
        fwd_bwd = forward_backward_seconds(
            fresh,
            tokenizer,
            [*self.data.forget, *self.unlearn_retain],
            batch_size=unlearn_config.scoring_batch_size,
            max_length=unlearn_config.max_length,
        )
        del fresh
        mask = {k: result.mask_stats[k] for k in ("k", "n_eligible", "p_percent")}
        mask["by_kind"] = {kind: group["selected"] for kind, group in result.mask_stats["by_kind"].items()}
        return {
            "fwd_bwd_s": round(fwd_bwd, 3),
            "scoring_over_fwd_bwd": round(result.timings.get("scoring_s") / fwd_bwd, 3),
            "mask": mask,
        }

    def grun(self, name: str, target: Path, grun_config, steer: bool) -> dict:
        """GRUN from a fresh copy of the target, measured as GRIN is; then a second request (the first
        retain author) on top of it, and the first forget set measured again (`sequential`).

        `base_forget`: the forget numbers of the base weights alone (the target's): what anyone who
        holds them gets back by dropping the intervention (grin_core/unlearning/grun.py, THREAT_MODEL)."""
        from benchmarks.peak_rss import PeakRss
        from grin_core.unlearning.grun import THREAT_MODEL
        from grin_core.unlearning.grun_train import grun_unlearn

        model, tokenizer = self.fresh(target)
        self.log(
            f"{name}: unlearning (gated intervention, rank {grun_config.rank}, {grun_config.gate} gate, "
            f"lr {grun_config.learning_rate:g}, seed {grun_config.seed}, "
            + (
                f"privacy schedule to AUC {self.target_auc:.3f} within {grun_config.max_epochs} epochs)"
                if steer
                else f"{grun_config.epochs} epochs)"
            )
        )
        with PeakRss() as rss:
            started = time.perf_counter()
            result = grun_unlearn(
                model,
                tokenizer,
                self.data.forget,
                self.unlearn_retain,
                grun_config,
                holdout_records=self.suite.holdout,
                target_auc=self.target_auc,
                steer=steer,
            )
            wall_s = seconds_since(started)
        entry = {
            "wall_s": wall_s,
            "scoring_s": None,
            "peak_rss_mb": rss.mb,
            "peak_rss_stage_only": rss.stage_only,
            "state_bytes": result.state_bytes.to_dict(),
            "trainable_params": result.trainable_params,
            "intervention_bytes": sum(p.numel() * p.element_size() for p in result.module.parameters()),
            "layers": list(result.module.layers),
            "timings": result.timings,
            "config": grun_config.to_dict(),
            "base_weights_changed": False,
            "threat_model": THREAT_MODEL,
        }
        self.log(
            f"{name}: {wall_s:.1f} s, {result.trainable_params} intervention parameters, "
            f"state {result.state_bytes.total / 2**20:.1f} MiB"
        )
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
        from grin_core.unlearning.grun_train import grun_unlearn

        author = self.subset.retain_authors[0]
        second = [r for r in self.data.retain if r.get("author_id") == author]
        rest = [r for r in self.unlearn_retain if r.get("author_id") != author]
        started = time.perf_counter()
        grun_unlearn(
            model,
            tokenizer,
            second,
            rest,
            grun_config,
            holdout_records=self.suite.holdout,
            target_auc=self.target_auc,
            steer=steer,
        )
        wall_s = seconds_since(started)
        metrics, _, _ = self.evaluate(f"{name} after a second request", model, tokenizer)
        keys = [k for k in metrics if k.startswith(("forget_", "mia_", "privleak"))]
        return {
            "second_author": author,
            "n_second": len(second),
            "wall_s": wall_s,
            "first_forget_after_second": {k: metrics[k] for k in keys},
        }


def _configs(recipe: Recipe, seed: int) -> tuple:
    """(model config, training config) of a recipe: TinyLlamaConfig + TrainConfig from scratch, or no model
    config (the base's own) + FinetuneConfig for a recipe with a base."""
    if recipe.base is not None:
        from grin_core.models.finetune import FinetuneConfig

        return None, FinetuneConfig(**{"seed": seed, **recipe.train})
    from grin_core.models.tiny_llama import TinyLlamaConfig
    from grin_core.models.train import TrainConfig

    return TinyLlamaConfig(**recipe.model), TrainConfig(**{"seed": seed, **recipe.train})


def retrain_state(checkpoint: Path, records: Sequence[Mapping], batch_size: int, lr: float) -> tuple[dict, int]:
    """(state bytes, parameters) of retraining from scratch: weights, gradients and AdamW moments,
    counted from the tensors after one optimizer step on one batch (a plain training loop's peak)."""
    import torch

    from grin_core.data.qa import qa_collator, qa_dataset
    from grin_core.models.checkpoint import load_checkpoint
    from grin_core.unlearning.state_bytes import measure_state

    model, tokenizer = load_checkpoint(checkpoint)
    model.train()
    batch = qa_collator(tokenizer)(
        qa_dataset(records[:batch_size], tokenizer).select_columns(["input_ids", "attention_mask", "labels"]).to_list()
    )
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


def run_description(unlearn_config, steer: bool, target_auc: float) -> str:
    """How a run is set up, for the log: method, mask size or full-parameter, learning rate, seed, and the
    privacy schedule's target or the fixed epochs."""
    return (
        f"{unlearn_config.method}, "
        f"{'full-parameter' if unlearn_config.full_parameter else f'p={unlearn_config.p_percent}%'}, "
        f"lr {unlearn_config.learning_rate:g}, seed {unlearn_config.seed}, "
        + (
            f"privacy schedule to AUC {target_auc:.3f} +- {unlearn_config.auc_margin:g} within "
            f"{unlearn_config.max_epochs} epochs"
            if steer
            else f"{unlearn_config.epochs} epochs"
        )
    )
