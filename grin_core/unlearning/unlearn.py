"""GRIN unlearning: score -> select top p% -> noise -> masked NPO / GradDiff / PO fine-tuning.

`UnlearnConfig` (unlearn_config.py) holds every hyper-parameter (validated, with help text); `UnlearnTrainer` is a
`transformers.Trainer` that overrides only what differs: the loss on paired forget/retain
batches, `train` scoped to the mask (masked_update.py) and logging of the loss parts.
`score_and_select` and `unlearn` are the entry points a pipeline calls, as one stage or two.

Data. The train dataset is the forget set (so epochs count forget passes, as in OpenUnlearning's
ForgetRetainDataset), batched by length; the collator pairs each forget batch with a retain batch
drawn from a seeded, length-grouped stream over the retain set. NPO's reference log-probs are
computed once, before noise, and stored as a column of the forget set: no second model in memory.

Defaults (NPO on the per-token log-ratio, beta 0.3, p 5 %, lr 3e-3, retain batch 32, the privacy
schedule with proportional push control and a 60-epoch budget) come from the lever table in
docs/benchmarks.md ("Reaching a retrained model's privacy"), measured against a model retrained
without the forget set: NPO on the summed ratio saturates (beta 0.1: forget answers keep a per-token
probability of 0.15 after 40 epochs, MIA AUC 1.0; the unseen level is ~1e-4), GradDiff reaches the
band but takes retain ROUGE-L to 0.24x, and at p 2 % the per-token push reached the band with retain
at 0.66-0.73x; p 5 % gave the masked update room to forget and to repair. Forgetting 4 authors
instead of 2, full pushes and a retain batch of 8 left retain ROUGE-L at 0.79-0.80 (0.82x) after
the whole budget; pushes weighed by the remaining AUC gap took it to 0.875, and a 4x retain batch
(steadier repair, 4x the retain data per epoch) to 0.919 (0.95x), in band at epoch 51.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    set_seed,
)
from transformers.trainer_pt_utils import get_length_grouped_indices

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.runtime.distributed import global_token_scale, rank_and_world
from grin_core.scoring.gri import MODEL_COLUMNS, autocast, batches, gri_scores
from grin_core.scoring.mask import Mask, select_top_p
from grin_core.scoring.masked_update import masked_update, trainable_elements
from grin_core.scoring.noise import inject_noise
from grin_core.unlearning.objectives import (
    answer_nll,
    answer_token_count,
    graddiff_objective,
    npo_objective,
    po_objective,
    sequence_logprob,
    simnpo_loss,
)
from grin_core.unlearning.privacy_schedule import PUSH, REPAIR, PrivacySchedule
from grin_core.unlearning.refusals import refusal_records
from grin_core.unlearning.resume import SaveAtIntervals, load_progress, save_progress
from grin_core.unlearning.state_bytes import StateBytes, StateMeter
from grin_core.runtime.steps import StepCallback
from grin_core.runtime.training_args import per_rank, unlearning_arguments
from grin_core.unlearning.unlearn_config import UnlearnConfig

REF_COLUMN = "ref_logp"
RETAIN_PROBE_SIZE = 100  # retain records the privacy schedule watches (40 tracked the gate's ROUGE-L poorly)


def retain_probe_sample(records: Sequence[Mapping[str, str]], seed: int) -> list[Mapping[str, str]]:
    """The retain records the privacy schedule watches: RETAIN_PROBE_SIZE of them, seeded."""
    order = np.random.default_rng(seed).permutation(len(records))[:RETAIN_PROBE_SIZE]
    return [records[i] for i in order]


class ForgetRetainCollator:
    """Pads a forget batch and appends a retain batch (`retain_*` keys) from a seeded stream.

    `batch_size` is per process (distributed.py: each rank takes its slice of one global batch). The stream is the retain set in length-grouped random order, reshuffled whenever it runs
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
        retain = self.pad([self.retain[i] for i in self.retain_indices()])
        batch.update({f"retain_{k}": v for k, v in retain.items()})
        return batch


class LossPartsLogging:
    """A Trainer mixin: each log adds the mean of every loss part a trainer appended to `self._parts`
    since the last one (forget_logp / retain_nll, ...)."""

    _parts: dict[str, list[float]]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs = {**logs, **{k: float(np.mean(v)) for k, v in self._parts.items() if v}}
            self._parts.clear()
        super().log(logs, start_time)


class UnlearnTrainer(LossPartsLogging, Trainer):
    """A Trainer whose loss is the configured unlearning objective on forget+retain batches.

    `mask=None` trains every parameter (the full-parameter baseline); otherwise only the mask's
    weights change (`masked_update`). Peak training state is in `self.state_meter.peak`.
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
        if config.method == "npo" and REF_COLUMN not in forget_dataset.column_names:
            raise ValueError(f"NPO needs reference log-probs in the forget set's {REF_COLUMN!r} column")
        self.config, self.mask = config, mask
        self.state_meter = StateMeter(
            reference=[torch.tensor(forget_dataset[REF_COLUMN])] if config.method == "npo" else ())
        self._parts: dict[str, list[float]] = defaultdict(list)
        self.phase = PUSH  # PrivacySchedule switches it to REPAIR (retain term alone)
        self.forget_weight, self.retain_weight = 1.0, config.alpha  # the push's mix; the schedule may steer it
        self.schedule: PrivacySchedule | None = None  # set by `unlearn`; its state goes into checkpoints
        self.fingerprint = fingerprint  # a progress checkpoint resumes only the run it names
        self._scratch = None
        if args is None:
            if checkpoint_dir is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="grin-unlearn-")
            args = unlearning_arguments(
                checkpoint_dir or self._scratch.name, epochs=config.max_epochs if scheduled else config.epochs,
                batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
                progress=progress, checkpoints=checkpoint_dir is not None, mixed_precision=config.mixed_precision,
                lr_scheduler=config.lr_scheduler, warmup_steps=config.warmup_steps,
                max_grad_norm=config.max_grad_norm)
        super().__init__(
            model=model,
            args=args,
            train_dataset=forget_dataset,
            data_collator=ForgetRetainCollator(tokenizer, retain_dataset, per_rank(config.retain_batch_size or config.batch_size),
                                               config.seed),
            processing_class=tokenizer,
            callbacks=[self.state_meter, *callbacks],
        )
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean
        if not progress:
            self.remove_callback(PrinterCallback)  # callers report progress through `callbacks`

    def train(self, *args, **kwargs):
        with masked_update(self.model, self.mask, self.config.update) as kept:
            self.state_meter.mask = kept
            self.trainable_elements = trainable_elements(self.model)
            return super().train(*args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """A progress checkpoint holds the trainable tensors and grin's state, not the whole model."""
        save_progress(self, output_dir or self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        load_progress(self, resume_from_checkpoint)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.config
        if self.phase == REPAIR:
            retain_logits = model(input_ids=inputs["retain_input_ids"],
                                  attention_mask=inputs["retain_attention_mask"]).logits
            loss = answer_nll(retain_logits, inputs["retain_labels"], global_token_scale)
            self._parts["repair_nll"].append(loss.item())
            return (loss, {"logits": retain_logits}) if return_outputs else loss
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        retain_nll = torch.zeros((), device=logits.device)
        alpha, weight = self.retain_weight, self.forget_weight  # the schedule's (config.alpha and 1 without)
        if alpha > 0:
            retain_logits = model(input_ids=inputs["retain_input_ids"],
                                  attention_mask=inputs["retain_attention_mask"]).logits
            retain_nll = answer_nll(retain_logits, inputs["retain_labels"], global_token_scale)
        if config.method == "simnpo":
            logp = sequence_logprob(logits, inputs["labels"])
            loss = weight * simnpo_loss(logp, answer_token_count(inputs["labels"]), config.beta, config.gamma)
            loss = loss + alpha * retain_nll
            self._parts["forget_logp"].append(logp.mean().item())
        elif config.method == "npo":
            logp, ref = sequence_logprob(logits, inputs["labels"]), inputs[REF_COLUMN]
            if config.length_normalised:  # per-token log-ratio: SimNPO's normalisation, reference kept
                count = answer_token_count(inputs["labels"]).clamp_min(1)
                logp, ref = logp / count, ref / count
            loss = npo_objective(logp, ref, retain_nll, config.beta, alpha, weight)
            self._parts["forget_logp"].append(logp.mean().item())
        elif config.method == "graddiff":
            forget_nll = answer_nll(logits, inputs["labels"], global_token_scale)
            loss = graddiff_objective(forget_nll, retain_nll, alpha, weight)
            self._parts["forget_nll"].append(forget_nll.item())
        else:
            refusal_nll = answer_nll(logits, inputs["labels"], global_token_scale)
            loss = po_objective(refusal_nll, retain_nll, alpha, weight)
            self._parts["refusal_nll"].append(refusal_nll.item())
        self._parts["retain_nll"].append(retain_nll.item())
        return (loss, {"logits": logits}) if return_outputs else loss



@torch.no_grad()
def reference_logprobs(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: Dataset, batch_size: int = 16,
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
        model, tokenizer, forget_records, retain_records, modules=config.eligible_modules,
        eps=config.eps, batch_size=config.scoring_batch_size, max_length=config.max_length, progress=progress,
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

    def checkpoint_record(self) -> dict:
        """What an unlearned checkpoint's grin_config.json says of the run that made it."""
        summary = self.summary()
        return {"unlearning": {k: summary[k] for k in ("config", "timings", "history", "probes")}}

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
) -> UnlearnResult:
    """Unlearn `forget_records` from `model` in place, keeping `retain_records`.

    GRIN: score and select (unless `mask` is given), compute NPO's reference log-probs, add noise
    to the selected weights, then train them alone. `config.full_parameter`: train everything,
    no mask or noise. Records are {question, answer} mappings; their text is never logged.

    With `holdout_records` (non-members: data the model never saw) the privacy schedule steers the
    forget-vs-holdout AUC into `target_auc` ± `config.auc_margin` and stops there
    (privacy_schedule.py); `result.probes` has its per-epoch measurements (`steer=False`: only
    those, for curves of a fixed run). Without, training runs `config.epochs` epochs of the objective.

    `checkpoint_dir`: save progress there at epoch ends, `checkpoint_every_s` apart (resume.py; a callback's
    `on_save` can ship it elsewhere). `resume_from`: a checkpoint of the same run (same
    `fingerprint`) to continue from; the result equals an uninterrupted run's (tests/core/test_resume.py).
    """
    set_seed(config.seed)
    timings: dict[str, float] = {}
    if config.full_parameter:
        mask = None
    elif mask is None:
        started = time.perf_counter()
        mask = score_and_select(model, tokenizer, forget_records, retain_records, config, progress)
        timings["scoring_s"] = time.perf_counter() - started
    original_forget = list(forget_records)
    if config.method == "po":
        forget_records = refusal_records(forget_records)
    forget = qa_dataset(forget_records, tokenizer, config.max_length)
    retain = qa_dataset(retain_records, tokenizer, config.max_length)
    if config.method == "npo":
        started = time.perf_counter()
        reference = reference_logprobs(model, tokenizer, forget, config.scoring_batch_size, config.mixed_precision)
        forget = forget.add_column(REF_COLUMN, reference)
        timings["reference_s"] = time.perf_counter() - started
    if mask is not None and config.sigma2 > 0:
        started = time.perf_counter()
        inject_noise(model, mask, config.sigma2, config.seed)
        timings["noise_s"] = time.perf_counter() - started
    trainer = UnlearnTrainer(model, config, forget, retain, tokenizer, mask=mask, callbacks=callbacks,
                             progress=progress, scheduled=bool(holdout_records) and steer,
                             checkpoint_dir=checkpoint_dir, fingerprint=fingerprint)
    schedule = None
    if holdout_records:
        retain_probe = retain_probe_sample(retain_records, config.seed)
        schedule = PrivacySchedule(trainer, tokenizer, original_forget, holdout_records, target_auc=target_auc,
                                   margin=config.auc_margin, retain_recovery=config.retain_recovery,
                                   repush_lr_factor=config.repush_lr_factor, push_control=config.push_control,
                                   alpha=config.alpha, alpha_max=config.alpha_max,
                                   band_lr_factor=config.band_lr_factor,
                                   retain_probe=retain_probe, batch_size=config.scoring_batch_size, steer=steer)
        trainer.add_callback(schedule)
        trainer.schedule = schedule
    if checkpoint_dir is not None:
        trainer.add_callback(SaveAtIntervals(checkpoint_every_s))  # after the schedule: it may stop training
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    timings["training_s"] = time.perf_counter() - started
    model.eval()
    return UnlearnResult(
        model=model,
        config=config,
        mask=mask,
        mask_stats=mask.stats() if mask is not None else None,
        timings={k: round(v, 3) for k, v in timings.items()},
        trainable_params=mask.k if mask is not None else sum(p.numel() for p in model.parameters()),
        optimized_elements=trainer.trainable_elements,
        state_bytes=trainer.state_meter.peak,
        history=[entry for entry in trainer.state.log_history if "loss" in entry],
        probes=schedule.history if schedule is not None else [],
    )
