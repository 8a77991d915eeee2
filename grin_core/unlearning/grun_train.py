"""Training one GRUN request: only the new intervention's parameters learn; every base weight is frozen.

Loss (the authors' objective, GRUN paper section 4):
    forget_weight * unlearning term + alpha * retain NLL + gate_weight * BCE(gates)
- unlearning term: NPO (per-token log-ratio, the service's NPO; its reference is the model before
  this request's module, i.e. the base with the intervention off: computed once, no second copy) or
  gradient difference's -NLL(forget);
- BCE over every hooked layer's gate logits: 1 from each forget example's last prompt token on
  (the question has been read there), 0 on every position of the retain batch.
With holdout records the privacy schedule steers and stops it as it does GRIN (privacy_schedule.py):
it sets `forget_weight` (0 = repair: retain and gate terms alone) and keeps the best in-band epoch's
trainable tensors, which here are the intervention's alone.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    set_seed,
)

from grin_core.data.qa import IGNORE_INDEX, qa_dataset
from grin_core.runtime.distributed import global_token_scale
from grin_core.unlearning.grun import GrunModule, attach, intervention_parameters
from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.objectives import (
    answer_nll,
    answer_token_count,
    graddiff_objective,
    npo_objective,
    sequence_logprob,
)
from grin_core.unlearning.privacy_schedule import PUSH, REPAIR, PrivacySchedule
from grin_core.unlearning.state_bytes import StateBytes, StateMeter
from grin_core.runtime.training_args import unlearning_arguments
from grin_core.unlearning.unlearn import (
    REF_COLUMN,
    ForgetRetainCollator,
    LossPartsLogging,
    reference_logprobs,
    retain_probe_sample,
)


def gate_targets(labels: torch.Tensor, attention_mask: torch.Tensor, forget: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, weights) for the BCE, both (B, T) float: forget rows are 1 from the last prompt token
    (the position before the first answer label) on, retain rows 0 everywhere; pads weigh 0."""
    attended = attention_mask.bool()
    if not forget:
        return torch.zeros_like(labels, dtype=torch.float32), attended.float()
    first_answer = labels.ne(IGNORE_INDEX).float().argmax(dim=1)
    from_prompt_end = torch.arange(labels.shape[1], device=labels.device)[None, :] >= (first_answer - 1)[:, None]
    return torch.ones_like(labels, dtype=torch.float32), (attended & from_prompt_end).float()


def gate_bce(recorded: Sequence[torch.Tensor], targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the hooked layers of each layer's weighted mean BCE of its (B, T) gate logits."""
    losses = [(F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).sum()
              / weights.sum().clamp_min(1) for logits in recorded]
    return torch.stack(losses).mean()


class GrunTrainer(LossPartsLogging, Trainer):
    """A Trainer over the base model with `module` attached: only the module's parameters train."""

    def __init__(self, model: PreTrainedModel, module: GrunModule, config: GrunConfig, forget: Dataset, retain: Dataset,
                 tokenizer: PreTrainedTokenizerBase, callbacks: Sequence[TrainerCallback] = (), progress: bool = False,
                 scheduled: bool = False) -> None:
        model.requires_grad_(False)
        module.requires_grad_(True)
        self.module, self.config = module, config
        self.gates = list(module.at.values())
        self.phase, self.forget_weight, self.retain_weight = PUSH, 1.0, config.alpha  # the schedule steers these
        self.schedule: PrivacySchedule | None = None
        self.state_meter = StateMeter(reference=[torch.tensor(forget[REF_COLUMN])] if REF_COLUMN in forget.column_names else ())
        self._parts: dict[str, list[float]] = defaultdict(list)
        self._scratch = tempfile.TemporaryDirectory(prefix="grin-grun-")
        super().__init__(
            model=model, args=unlearning_arguments(  # an unlearning run's arguments at this schedule
                self._scratch.name, epochs=config.max_epochs if scheduled else config.epochs,
                batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
                progress=progress),
            train_dataset=forget,
            data_collator=ForgetRetainCollator(tokenizer, retain, config.retain_batch_size or config.batch_size, config.seed),
            processing_class=tokenizer, callbacks=[self.state_meter, *callbacks],
        )
        if not progress:
            self.remove_callback(PrinterCallback)

    def _forward(self, model, ids, attention_mask):
        """Logits and this module's gate logits of every hooked layer (recorded by the hooks)."""
        for gate in self.gates:
            gate.recorded = []
        try:
            logits = model(input_ids=ids, attention_mask=attention_mask).logits
            return logits, [gate.recorded[0] for gate in self.gates]
        finally:
            for gate in self.gates:
                gate.recorded = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        config = self.config
        logits, forget_gates = self._forward(model, inputs["input_ids"], inputs["attention_mask"])
        retain_logits, retain_gates = self._forward(model, inputs["retain_input_ids"], inputs["retain_attention_mask"])
        retain_nll = answer_nll(retain_logits, inputs["retain_labels"], global_token_scale)
        forget_t, forget_w = gate_targets(inputs["labels"], inputs["attention_mask"], forget=True)
        retain_t, retain_w = gate_targets(inputs["retain_labels"], inputs["retain_attention_mask"], forget=False)
        bce = (gate_bce(forget_gates, forget_t, forget_w) + gate_bce(retain_gates, retain_t, retain_w)) / 2
        weight = 0.0 if self.phase == REPAIR else self.forget_weight
        if config.objective == "npo":
            count = answer_token_count(inputs["labels"]).clamp_min(1)
            logp = sequence_logprob(logits, inputs["labels"]) / count
            loss = npo_objective(logp, inputs[REF_COLUMN] / count, retain_nll, config.beta, self.retain_weight, weight)
            self._parts["forget_logp"].append(logp.mean().item())
        else:
            loss = graddiff_objective(answer_nll(logits, inputs["labels"], global_token_scale), retain_nll,
                                      self.retain_weight, weight)
        loss = loss + config.gate_weight * bce
        self._parts["retain_nll"].append(retain_nll.item())
        self._parts["gate_bce"].append(bce.item())
        return (loss, {"logits": logits}) if return_outputs else loss


@dataclass
class GrunResult:
    """What a GRUN request did: the model (base + interventions), the new module and what it cost."""

    model: PreTrainedModel
    config: GrunConfig
    module: GrunModule
    timings: dict[str, float]
    trainable_params: int
    total_intervention_params: int
    state_bytes: StateBytes
    history: list[dict] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"config": self.config.to_dict(), "layers": list(self.module.layers), "timings": self.timings,
                "trainable_params": self.trainable_params, "total_intervention_params": self.total_intervention_params,
                "optimized_elements": self.trainable_params, "state_bytes": self.state_bytes.to_dict(),
                "history": self.history, "probes": self.probes, "base_weights_changed": False}


def grun_unlearn(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    config: GrunConfig,
    callbacks: Sequence[TrainerCallback] = (),
    progress: bool = False,
    holdout_records: Sequence[Mapping[str, str]] | None = None,
    target_auc: float = 0.5,
    steer: bool = True,
) -> GrunResult:
    """Attach a new request's intervention to `model` (after any earlier ones) and train it alone.

    Records are {question, answer} mappings; their text is never logged. `holdout_records`,
    `target_auc` and `steer` as in `grin_core.unlearning.unlearn.unlearn`.
    """
    set_seed(config.seed)
    timings: dict[str, float] = {}
    forget = qa_dataset(forget_records, tokenizer, config.max_length)
    retain = qa_dataset(retain_records, tokenizer, config.max_length)
    if config.objective == "npo":  # before the new module exists: the reference is the model it starts from
        started = time.perf_counter()
        forget = forget.add_column(REF_COLUMN, reference_logprobs(model, tokenizer, forget, config.scoring_batch_size))
        timings["reference_s"] = time.perf_counter() - started
    module = attach(model, config.shape(), seed=config.seed)
    trainer = GrunTrainer(model, module, config, forget, retain, tokenizer, callbacks, progress,
                          scheduled=bool(holdout_records) and steer)
    schedule = None
    if holdout_records:
        retain_probe = retain_probe_sample(retain_records, config.seed)
        schedule = PrivacySchedule(trainer, tokenizer, forget_records, holdout_records, target_auc=target_auc,
                                   margin=config.auc_margin, retain_recovery=config.retain_recovery,
                                   push_control=config.push_control, alpha=config.alpha, retain_probe=retain_probe,
                                   batch_size=config.scoring_batch_size, steer=steer)
        trainer.add_callback(schedule)
        trainer.schedule = schedule
    started = time.perf_counter()
    trainer.train()
    timings["training_s"] = time.perf_counter() - started
    model.eval()
    model.requires_grad_(True)  # as loaded: callers (probes) decide what trains next
    return GrunResult(
        model=model, config=config, module=module, timings={k: round(v, 3) for k, v in timings.items()},
        trainable_params=sum(p.numel() for p in module.parameters()),
        total_intervention_params=intervention_parameters(model), state_bytes=trainer.state_meter.peak,
        history=[e for e in trainer.state.log_history if "loss" in e],
        probes=schedule.history if schedule is not None else [],
    )
