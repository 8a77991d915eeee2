"""GRIN unlearning: score -> select top p% -> noise -> masked NPO / GradDiff / PO fine-tuning.

`UnlearnConfig` (unlearn_config.py) holds every hyper-parameter (validated, with help text);
`UnlearnTrainer` is the forget/retain trainer (forget_retain.py) that overrides only what differs
for GRIN: it trains the mask's weights alone (masked_update.py), and in a repair epoch its loss is the
retain term alone. The objective (NPO, GradDiff, PO, SimNPO, or any other of `OBJECTIVES`) is chosen
by name. `score_and_select` and `unlearn` are the entry points a pipeline calls, as one stage or two.

Defaults (NPO on the per-token log-ratio, beta 0.3, p 5 %, lr 3e-3, retain batch 32, the privacy
schedule with proportional push control and a 60-epoch budget) come from the lever table in
docs/benchmarks.md ("Reaching a retrained model's privacy"), measured against a model retrained
without the forget set; the table has the numbers behind each choice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from grin_core.evaluation.calibration import NonMemberLevels, non_member_levels
from grin_core.runtime.flops import FlopMeter, stage_meter
from grin_core.runtime.steps import StepCallback
from grin_core.scoring.gri import gri_scores
from grin_core.scoring.mask import Mask, select_top_p
from grin_core.scoring.masked_update import masked_update
from grin_core.scoring.noise import inject_noise
from grin_core.unlearning.forget_retain import (
    ROW_COLUMN,
    ForgetRetainTrainer,
    ScheduledRun,
    forget_retain_datasets,
    run_scheduled,
)
from grin_core.unlearning.nonmember_profiles import NonMemberProfiles, ProfileTargets
from grin_core.unlearning.objective_registry import OBJECTIVES
from grin_core.unlearning.privacy_schedule import PUSH, REPAIR
from grin_core.unlearning.relearn_guard import relearn_guard_backward
from grin_core.unlearning.resume import SaveAtIntervals
from grin_core.unlearning.state_bytes import StateBytes
from grin_core.unlearning.unlearn_config import UnlearnConfig


class UnlearnTrainer(ForgetRetainTrainer):
    """GRIN's trainer: the configured objective on forget+retain batches, on the mask's weights.

    `mask=None` trains every parameter (the full-parameter baseline); otherwise only the mask's
    weights change (`masked_update`).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        config: UnlearnConfig,
        forget_dataset: Dataset,
        retain_dataset: Dataset,
        tokenizer: PreTrainedTokenizerBase,
        mask: Mask | None = None,
        args: TrainingArguments | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        progress: bool = False,
        scheduled: bool = False,
        checkpoint_dir: str | None = None,
        fingerprint: str = "",
    ) -> None:
        self.mask = mask
        super().__init__(
            model,
            config,
            forget_dataset,
            retain_dataset,
            tokenizer,
            objective=config.method,
            args=args,
            callbacks=callbacks,
            progress=progress,
            scheduled=scheduled,
            checkpoint_dir=checkpoint_dir,
            fingerprint=fingerprint,
        )

    @contextlib.contextmanager
    def trainable(self) -> Iterator[None]:
        with masked_update(self.model, self.mask, self.config.update) as kept:
            self.state_meter.mask = kept
            yield

    def training_step(self, model, inputs, num_items_in_batch=None):
        """With the relearning guard on, a push step first adds the simulated attack's gradient
        (relearn_guard.py) to the trainable weights'; the step's own loss then adds to it."""
        if self.config.relearn_guard > 0 and self.phase == PUSH and self.profiles is not None:
            model.train()
            excess = relearn_guard_backward(
                self.accelerator.unwrap_model(model),
                inputs,
                self.profiles,
                inputs[ROW_COLUMN],
                self.config.relearn_eps,
                self.config.relearn_guard,
                self.config.relearn_guard_stat,
            )
            if excess is not None:
                self._parts["relearn_excess"].append(excess)
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.phase == REPAIR:  # the retain term alone
            retain_logits, loss = self.retain_nll(model, inputs)
            self._parts["repair_nll"].append(loss.item())
            return (loss, {"logits": retain_logits}) if return_outputs else loss
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        retain_nll = torch.zeros((), device=logits.device)
        if self.retain_weight > 0:  # the schedule's (config.alpha without)
            _, retain_nll = self.retain_nll(model, inputs)
        loss = self.objective_loss(logits, inputs, retain_nll, self.forget_weight)
        return (loss, {"logits": logits}) if return_outputs else loss


def score_and_select(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    config: UnlearnConfig,
    progress: bool = False,
    on_step: StepCallback | None = None,
) -> Mask:
    """GRI scores of the eligible weights, then the global top-p% mask (the scoring stage)."""
    scores = gri_scores(
        model,
        tokenizer,
        forget_records,
        retain_records,
        modules=config.eligible_modules,
        eps=config.eps,
        batch_size=config.scoring_batch_size,
        max_length=config.max_length,
        progress=progress,
        on_step=on_step,
    )
    return select_top_p(scores, config.p_percent)


@dataclass
class UnlearnResult:
    """What a run did: the model (unlearned in place), its mask and what it cost.

    timings: seconds of scoring, reference, noise, training. trainable_params: weights that could
    change (k, or every parameter in full mode); optimized_elements: elements the optimizer held.
    """

    model: PreTrainedModel
    config: UnlearnConfig
    mask: Mask | None
    mask_stats: dict | None
    timings: dict[str, float]
    trainable_params: int
    optimized_elements: int
    state_bytes: StateBytes
    history: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)  # privacy schedule, per epoch (epoch 0 = before)
    levels: dict | None = None  # every attack's non-member level the schedule steered into
    flops: dict | None = None  # model FLOPs by stage, from the tokens processed (runtime/flops.py)

    def checkpoint_record(self) -> dict:
        """What an unlearned checkpoint's grin_config.json says of the run that made it."""
        summary = self.summary()
        return {"unlearning": {k: summary[k] for k in ("config", "timings", "history", "probes", "levels", "flops")}}

    def summary(self) -> dict:
        """JSON-ready numbers (no model, no mask tensors) for artifacts and audit records."""
        return {
            "config": self.config.to_dict(),
            "timings": self.timings,
            "trainable_params": self.trainable_params,
            "optimized_elements": self.optimized_elements,
            "state_bytes": self.state_bytes.to_dict(),
            "mask_sha256": self.mask.content_sha256() if self.mask is not None else None,
            "mask_stats": self.mask_stats,
            "history": self.history,
            "probes": self.probes,
            "levels": self.levels,
            "flops": self.flops,
        }


def unlearn(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    config: UnlearnConfig,
    mask: Mask | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = False,
    holdout_records: Sequence[Mapping[str, str]] | None = None,
    target_auc: float = 0.5,
    steer: bool = True,
    checkpoint_dir: str | None = None,
    checkpoint_every_s: float = 0.0,
    resume_from: str | None = None,
    fingerprint: str = "",
    calibration_records: Sequence[Mapping[str, str]] | None = None,
) -> UnlearnResult:
    """Unlearn `forget_records` from `model` in place, keeping `retain_records`.

    GRIN: score and select (unless `mask` is given), compute the objective's reference log-probs
    (NPO), add noise to the selected weights, then train them alone. `config.full_parameter`: train
    everything, no mask or noise. Records are {question, answer} mappings; their text is never logged.

    With `holdout_records` (non-members: data the model never saw) the privacy schedule steers the
    forget-vs-holdout AUC into `target_auc` ± `config.auc_margin` and stops there
    (privacy_schedule.py); `result.probes` has its per-epoch measurements (`steer=False`: only
    those, for curves of a fixed run). Without, training runs `config.epochs` epochs of the objective.

    `calibration_records` (never seen, drawn like the training data): every attack's non-member level
    for the schedule, and the never-seen profiles a `profiles` objective (match) pulls the forget
    answers onto; without them the holdout's profiles and levels of 0.5 (the loss attack: `target_auc`).

    `checkpoint_dir`: save progress there at epoch ends, `checkpoint_every_s` apart (resume.py; a
    callback's `on_save` can ship it elsewhere). `resume_from`: a checkpoint of the same run (same
    `fingerprint`) to continue from; the result equals an uninterrupted run's (tests/core/test_resume.py).
    """
    set_seed(config.seed)
    records = _Records(forget_records, retain_records, holdout_records, calibration_records)
    saving = _Saving(checkpoint_dir, checkpoint_every_s, resume_from, fingerprint)
    timings: dict[str, float] = {}
    meter = FlopMeter.of(model)
    with meter.attached(model):
        prepared = _before_training(model, tokenizer, records, config, mask, progress, timings, meter)
        trainer = _trainer(model, tokenizer, config, prepared, records, meter, saving, callbacks, progress, steer)
        with meter.stage("training"):
            run = _train_scheduled(trainer, tokenizer, records, prepared.levels, saving, target_auc, steer)
    timings["training_s"] = run.training_s
    return _result(model, trainer, run, timings, prepared.levels, meter)


@dataclass(frozen=True)
class _Records:
    """The records one run reads: what to forget and what to keep, and the never-seen holdout and
    calibration records the privacy schedule measures against (None without)."""

    forget: Sequence[Mapping[str, str]]
    retain: Sequence[Mapping[str, str]]
    holdout: Sequence[Mapping[str, str]] | None
    calibration: Sequence[Mapping[str, str]] | None


@dataclass(frozen=True)
class _Saving:
    """A run's progress checkpoints (resume.py): where (None: nowhere), how many seconds apart, and the
    checkpoint of the same run (`fingerprint`) it continues from."""

    checkpoint_dir: str | None
    every_s: float
    resume_from: str | None
    fingerprint: str


@dataclass(frozen=True)
class _Prepared:
    """What training starts from: the mask (None in full mode), the datasets, and the never-seen levels
    and profiles measured before anything changed the model."""

    mask: Mask | None
    forget: Dataset
    retain: Dataset
    levels: NonMemberLevels | None
    profiles: NonMemberProfiles | None


def _before_training(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: _Records,
    config: UnlearnConfig,
    mask: Mask | None,
    progress: bool,
    timings: dict[str, float],
    meter: FlopMeter,
) -> _Prepared:
    """The non-member levels and profiles first (the model still unchanged), then `_prepare`."""
    with meter.stage("nonmember"):
        levels, profiles = _nonmember(
            model, tokenizer, records.forget, records.holdout, records.calibration, config, timings
        )
    mask, forget, retain = _prepare(
        model, tokenizer, records.forget, records.retain, config, mask, progress, timings, meter
    )
    return _Prepared(mask, forget, retain, levels, profiles)


def _trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: UnlearnConfig,
    prepared: _Prepared,
    records: _Records,
    meter: FlopMeter,
    saving: _Saving,
    callbacks: Sequence[TrainerCallback],
    progress: bool,
    steer: bool,
) -> UnlearnTrainer:
    """GRIN's trainer over the prepared datasets and mask, for the schedule's budget when it steers, with
    the never-seen profiles a `profiles` objective pulls toward and the meter that counts its FLOPs."""
    trainer = UnlearnTrainer(
        model,
        config,
        prepared.forget,
        prepared.retain,
        tokenizer,
        mask=prepared.mask,
        callbacks=callbacks,
        progress=progress,
        scheduled=bool(records.holdout) and steer,
        checkpoint_dir=saving.checkpoint_dir,
        fingerprint=saving.fingerprint,
    )
    trainer.profiles = prepared.profiles and ProfileTargets(prepared.profiles, len(prepared.forget))
    trainer.flop_meter = meter
    return trainer


def _train_scheduled(
    trainer: UnlearnTrainer,
    tokenizer: PreTrainedTokenizerBase,
    records: _Records,
    levels: NonMemberLevels | None,
    saving: _Saving,
    target_auc: float,
    steer: bool,
) -> ScheduledRun:
    """Train under the privacy schedule, aimed at the measured loss-attack level when there is one
    (`target_auc` otherwise), saving progress when a checkpoint directory is given."""
    return run_scheduled(
        trainer,
        tokenizer,
        records.forget,
        records.retain,
        records.holdout,
        target_auc=levels.aucs["loss"] if levels else target_auc,
        steer=steer,
        after_schedule=[SaveAtIntervals(saving.every_s)] if saving.checkpoint_dir is not None else [],
        resume_from=saving.resume_from,
        levels=levels and levels.aucs,
        nonmember_prob_ratio=levels and levels.mean_prob_ratio,
        calibration_records=records.calibration,
    )


def _result(
    model: PreTrainedModel,
    trainer: UnlearnTrainer,
    run: ScheduledRun,
    timings: dict[str, float],
    levels: NonMemberLevels | None,
    meter: FlopMeter,
) -> UnlearnResult:
    """The model, the trainer's config and mask, and what the run measured and cost."""
    mask = trainer.mask
    return UnlearnResult(
        model=model,
        config=trainer.config,
        mask=mask,
        mask_stats=mask.stats() if mask is not None else None,
        timings={k: round(v, 3) for k, v in timings.items()},
        trainable_params=mask.k if mask is not None else sum(p.numel() for p in model.parameters()),
        optimized_elements=trainer.trainable_elements,
        state_bytes=trainer.state_meter.peak,
        history=run.history,
        probes=run.probes,
        levels=levels and levels.to_dict(),
        flops=meter.summary(),
    )


def _prepare(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    config: UnlearnConfig,
    mask: Mask | None,
    progress: bool,
    timings: dict[str, float],
    meter: FlopMeter | None = None,
) -> tuple[Mask | None, Dataset, Dataset]:
    """Before training, in this order: the mask (scored unless given; none in full mode), the datasets
    with the objective's reference pass (before noise), and the noise on the selected weights."""
    if config.full_parameter:
        mask = None
    elif mask is None:
        started = time.perf_counter()
        with stage_meter(meter, "scoring"):
            mask = score_and_select(model, tokenizer, forget_records, retain_records, config, progress)
        timings["scoring_s"] = time.perf_counter() - started
    with stage_meter(meter, "reference"):
        forget, retain = forget_retain_datasets(
            model,
            tokenizer,
            forget_records,
            retain_records,
            config.method,
            config,
            timings,
            mixed_precision=config.mixed_precision,
        )
    if mask is not None and config.sigma2 > 0:
        started = time.perf_counter()
        inject_noise(model, mask, config.sigma2, config.seed)
        timings["noise_s"] = time.perf_counter() - started
    return mask, forget, retain


def _nonmember(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    holdout_records: Sequence[Mapping[str, str]] | None,
    calibration_records: Sequence[Mapping[str, str]] | None,
    config: UnlearnConfig,
    timings: dict[str, float],
) -> tuple[NonMemberLevels | None, NonMemberProfiles | None]:
    """Before anything changes the model: every attack's non-member level (with calibration and holdout
    records) and the never-seen profiles a `profiles` objective needs (`timings["nonmember_s"]`)."""
    started = time.perf_counter()
    levels = (
        non_member_levels(
            model, tokenizer, calibration_records, holdout_records, forget_records, config.scoring_batch_size
        )
        if calibration_records and holdout_records
        else None
    )
    profiles = None
    if OBJECTIVES[config.method].profiles:
        never_seen = calibration_records or holdout_records
        if not never_seen:
            raise ValueError(f"objective {config.method!r} needs never-seen records: calibration or holdout")
        profiles = NonMemberProfiles.of_records(model, tokenizer, never_seen, config.scoring_batch_size)
    if levels is not None or profiles is not None:
        timings["nonmember_s"] = time.perf_counter() - started
    return levels, profiles
