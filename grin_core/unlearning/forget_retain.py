"""What every unlearning method shares: forget batches paired with retain batches, one trainer base,
and one scheduled run.

Data. The train dataset is the forget set (so epochs count forget passes, as in OpenUnlearning's
ForgetRetainDataset), batched by length; the collator pairs each forget batch with a retain batch
drawn from a seeded, length-grouped stream over the retain set. An objective that needs reference
log-probs (NPO) gets them computed once, before training changes anything, as a column of the
forget set: no second model in memory.

`ForgetRetainTrainer` is a `transformers.Trainer` that holds what the privacy schedule steers
(`phase`, `forget_weight`, `retain_weight`), the objective (objective_registry.py), progress
checkpoints (resume.py), the logged loss parts and the state accounting. A method subclasses it and
overrides what it trains (`trainable`) and its loss (`compute_loss`): GRIN (unlearn.py) and GRUN
(grun_train.py). `run_scheduled` trains one, steered and stopped by the privacy schedule when there
are holdout records.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_pt_utils import get_length_grouped_indices

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.runtime.distributed import global_token_scale, rank_and_world
from grin_core.runtime.flops import FlopMeter
from grin_core.runtime.training_args import per_rank, unlearning_arguments
from grin_core.scoring.gri import MODEL_COLUMNS, autocast, batches
from grin_core.scoring.masked_update import trainable_elements
from grin_core.unlearning.nonmember_profiles import ProfileTargets
from grin_core.unlearning.objective_registry import OBJECTIVES, ForgetBatch
from grin_core.unlearning.objectives import answer_nll, sequence_logprob
from grin_core.unlearning.privacy_schedule import PUSH, PrivacySchedule
from grin_core.unlearning.refusals import refusal_records
from grin_core.unlearning.resume import load_progress, save_progress
from grin_core.unlearning.state_bytes import StateMeter

REF_COLUMN = "ref_logp"
ROW_COLUMN = "row"  # a forget example's index in the forget set: its profile targets (match)
RETAIN_PROBE_SIZE = 100  # retain records the privacy schedule watches (40 tracked the gate's ROUGE-L poorly)


def retain_probe_sample(records: Sequence[Mapping[str, str]], seed: int) -> list[Mapping[str, str]]:
    """The retain records the privacy schedule watches: RETAIN_PROBE_SIZE of them, seeded."""
    order = np.random.default_rng(seed).permutation(len(records))[:RETAIN_PROBE_SIZE]
    return [records[i] for i in order]


class ForgetRetainCollator:
    """Pads a forget batch and appends a retain batch (`retain_*` keys) from a seeded stream.

    `batch_size` is per process (runtime/distributed.py: each rank takes its slice of one global
    batch). The stream is the retain set in length-grouped random order, reshuffled whenever it runs
    out, so retain batches pad little and every retain example is used equally often.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, retain: Dataset, batch_size: int, seed: int) -> None:
        self.pad = qa_collator(tokenizer)
        self.retain = retain.select_columns(MODEL_COLUMNS)
        self.lengths = list(retain["length"])
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.queue: list[int] = []

    def retain_indices(self) -> list[int]:
        """This rank's slice of the next global retain batch (every rank advances the same stream)."""
        rank, world = rank_and_world()
        size = self.batch_size * world
        while len(self.queue) < size:
            self.queue += get_length_grouped_indices(self.lengths, size, generator=self.generator)
        taken, self.queue = self.queue[:size], self.queue[size:]
        return taken[rank * self.batch_size : (rank + 1) * self.batch_size]

    def __call__(self, features: list[Mapping]) -> dict[str, torch.Tensor]:
        batch = dict(self.pad([{k: f[k] for k in MODEL_COLUMNS} for f in features]))
        if REF_COLUMN in features[0]:
            batch[REF_COLUMN] = torch.tensor([f[REF_COLUMN] for f in features], dtype=torch.float32)
        if ROW_COLUMN in features[0]:
            batch[ROW_COLUMN] = torch.tensor([f[ROW_COLUMN] for f in features], dtype=torch.long)
        retain = self.pad([self.retain[i] for i in self.retain_indices()])
        batch.update({f"retain_{k}": v for k, v in retain.items()})
        return batch


class ForgetRetainTrainer(Trainer):
    """A Trainer whose loss is an unlearning objective on forget batches paired with retain batches.

    `config`: the method's config (UnlearnConfig, GrunConfig: `training_options`, `alpha`, batch
    sizes, seed); `objective`: a name in `OBJECTIVES`. `scheduled`: train for the privacy schedule's
    budget. `checkpoint_dir`: save progress there (resume.py); `fingerprint` names the run a progress
    checkpoint resumes. Peak training state is in `self.state_meter.peak`.
    """

    scratch_prefix = "grin-unlearn-"  # the output directory when no checkpoint_dir is given

    def __init__(
        self,
        model: PreTrainedModel,
        config,
        forget: Dataset,
        retain: Dataset,
        tokenizer: PreTrainedTokenizerBase,
        *,
        objective: str,
        args: TrainingArguments | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        progress: bool = False,
        scheduled: bool = False,
        checkpoint_dir: str | None = None,
        fingerprint: str = "",
    ) -> None:
        self.config, self.objective = config, OBJECTIVES[objective]
        if self.objective.needs_reference and REF_COLUMN not in forget.column_names:
            raise ValueError(f"{objective} needs reference log-probs in the forget set's {REF_COLUMN!r} column")
        self.state_meter = StateMeter(
            reference=[torch.tensor(forget[REF_COLUMN])] if self.objective.needs_reference else ()
        )
        self._parts: dict[str, list[float]] = defaultdict(list)
        self.phase = PUSH  # PrivacySchedule switches it to REPAIR
        self.forget_weight, self.retain_weight = 1.0, config.alpha  # the push's mix; the schedule may steer it
        self.schedule: PrivacySchedule | None = None  # set by `run_scheduled`; its state goes into checkpoints
        self.profiles: ProfileTargets | None = None  # the never-seen profiles a `profiles` objective matches
        self.flop_meter: FlopMeter | None = None  # counts the tokens of training and of the schedule's probes
        self.fingerprint = fingerprint  # a progress checkpoint resumes only the run it names
        self._scratch = None
        if args is None:
            if checkpoint_dir is None:
                self._scratch = tempfile.TemporaryDirectory(prefix=self.scratch_prefix)
            args = unlearning_arguments(
                checkpoint_dir or self._scratch.name,
                progress=progress,
                checkpoints=checkpoint_dir is not None,
                **config.training_options(scheduled),
            )
        retain_batch = per_rank(config.retain_batch_size or config.batch_size)
        super().__init__(
            model=model,
            args=args,
            train_dataset=forget,
            data_collator=ForgetRetainCollator(tokenizer, retain, retain_batch, config.seed),
            processing_class=tokenizer,
            callbacks=[self.state_meter, *callbacks],
        )
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean
        if not progress:
            self.remove_callback(PrinterCallback)  # callers report progress through `callbacks`

    def trainable(self) -> contextlib.AbstractContextManager:
        """While training: only the method's parameters require gradients. Every parameter by default."""
        return contextlib.nullcontext()

    def train(self, *args, **kwargs):
        with self.trainable():
            self.trainable_elements = trainable_elements(self.model)
            return super().train(*args, **kwargs)

    def retain_nll(self, model, inputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The retain batch's logits and its token-mean answer NLL (the global batch's under DDP)."""
        logits = model(input_ids=inputs["retain_input_ids"], attention_mask=inputs["retain_attention_mask"]).logits
        return logits, answer_nll(logits, inputs["retain_labels"], global_token_scale)

    def objective_loss(
        self, logits: torch.Tensor, inputs: Mapping[str, torch.Tensor], retain_nll: torch.Tensor, weight: float
    ) -> torch.Tensor:
        """The objective on this forget batch at forget weight `weight`; logs its parts and the retain NLL."""
        loss, parts = self.objective.loss(
            ForgetBatch(
                logits=logits,
                labels=inputs["labels"],
                reference=inputs.get(REF_COLUMN),
                retain_nll=retain_nll,
                alpha=self.retain_weight,
                weight=weight,
                config=self.config,
                rows=inputs.get(ROW_COLUMN),
                profiles=self.profiles,
            )
        )
        for key, value in parts.items():
            self._parts[key].append(value)
        self._parts["retain_nll"].append(retain_nll.item())
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Each log adds the mean of every loss part appended to `self._parts` since the last one."""
        if "loss" in logs:
            logs = {**logs, **{k: float(np.mean(v)) for k, v in self._parts.items() if v}}
            self._parts.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """A progress checkpoint holds the trainable tensors and grin's state, not the whole model."""
        save_progress(self, output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_progress(self, resume_from_checkpoint)


@torch.no_grad()
def reference_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    batch_size: int = 16,
    mixed_precision: bool = False,
) -> list[float]:
    """Summed answer log-likelihood of every example of `dataset` (in its order), eval mode, in the
    precision training will use (NPO compares the two)."""
    order = np.argsort(dataset["length"], kind="stable")
    out = np.zeros(len(dataset), dtype=np.float64)
    was_training = model.training
    model.eval()
    values = []
    for batch in batches(dataset.select(order), tokenizer, batch_size):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        with autocast(model.device) if mixed_precision else contextlib.nullcontext():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        values.append(sequence_logprob(logits, batch["labels"]).cpu())
    model.train(was_training)
    out[order] = torch.cat(values).double().numpy()
    return out.tolist()


def forget_retain_datasets(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    objective: str,
    config,
    timings: dict[str, float],
    mixed_precision: bool = False,
) -> tuple[Dataset, Dataset]:
    """The forget and retain datasets as `objective` needs them: refusals as the forget answers when
    it trains towards refusals, and the reference log-probs of `model` as it is now when it needs
    them (`timings["reference_s"]`)."""
    needs = OBJECTIVES[objective]
    if needs.refusal_targets:
        forget_records = refusal_records(forget_records)
    forget = qa_dataset(forget_records, tokenizer, config.max_length)
    retain = qa_dataset(retain_records, tokenizer, config.max_length)
    if needs.profiles:
        forget = forget.add_column(ROW_COLUMN, list(range(len(forget))))
    if needs.needs_reference:
        started = time.perf_counter()
        reference = reference_logprobs(model, tokenizer, forget, config.scoring_batch_size, mixed_precision)
        forget = forget.add_column(REF_COLUMN, reference)
        timings["reference_s"] = time.perf_counter() - started
    return forget, retain


LEVEL_SAMPLE = 100  # never-seen records whose levels the schedule re-measures at every probe


def level_sample(records: Sequence[Mapping[str, str]] | None, config) -> list[Mapping[str, str]]:
    """The calibration records the schedule re-measures levels on (the gate reads the candidate's own levels,
    so the schedule steers toward them, whichever stop rule)."""
    if not records:
        return []
    order = np.random.default_rng(config.seed).permutation(len(records))[:LEVEL_SAMPLE]
    return [records[i] for i in sorted(order)]


@dataclass
class ScheduledRun:
    """What `run_scheduled` reports: training seconds, the logged losses and the schedule's probes."""

    training_s: float
    history: list[dict]
    probes: list[dict]


def run_scheduled(
    trainer: ForgetRetainTrainer,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    holdout_records: Sequence[Mapping[str, str]] | None,
    *,
    target_auc: float,
    steer: bool,
    after_schedule: Sequence[TrainerCallback] = (),
    resume_from: str | None = None,
    levels: Mapping[str, float] | None = None,
    nonmember_prob_ratio: float | None = None,
    calibration_records: Sequence[Mapping[str, str]] | None = None,
) -> ScheduledRun:
    """Train `trainer`; with holdout records the privacy schedule (privacy_schedule.py) watches each
    epoch, steers the forget-vs-holdout AUC into `target_auc` ± the config's margin and stops there
    (`steer=False`: it only measures). `levels`: every attack's non-member level and
    `nonmember_prob_ratio` the never-seen records' probability ratio, for the stop rule over all
    attacks; with `calibration_records` the levels (the loss attack's `target_auc` too) are measured
    again on the model at every probe (a sample: `LEVEL_SAMPLE` records). `after_schedule` callbacks run
    after it (it may stop training).
    The model ends in eval mode."""
    config, schedule = trainer.config, None
    if holdout_records:
        schedule = PrivacySchedule(
            trainer,
            tokenizer,
            forget_records,
            holdout_records,
            target_auc=target_auc,
            retain_probe=retain_probe_sample(retain_records, config.seed),
            batch_size=config.scoring_batch_size,
            steer=steer,
            levels=levels,
            calibration=level_sample(calibration_records, config),
            nonmember_prob_ratio=nonmember_prob_ratio,
            **config.schedule_options(),
        )
        trainer.add_callback(schedule)
        trainer.schedule = schedule
    for callback in after_schedule:
        trainer.add_callback(callback)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    training_s = time.perf_counter() - started
    trainer.model.eval()
    return ScheduledRun(
        training_s=training_s,
        history=[entry for entry in trainer.state.log_history if "loss" in entry],
        probes=schedule.history if schedule is not None else [],
    )


@contextlib.contextmanager
def frozen_except(model: torch.nn.Module, trained: torch.nn.Module) -> Iterator[None]:
    """Only `trained`'s parameters require gradients inside; every parameter does again after."""
    model.requires_grad_(False)
    trained.requires_grad_(True)
    try:
        yield
    finally:
        model.requires_grad_(True)
