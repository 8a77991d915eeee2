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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainerCallback,
    set_seed,
)

from grin_core.data.qa import IGNORE_INDEX
from grin_core.runtime.distributed import global_token_scale
from grin_core.unlearning.forget_retain import (
    ForgetRetainTrainer,
    forget_retain_datasets,
    frozen_except,
    run_scheduled,
)
from grin_core.unlearning.grun import GrunModule, attach, intervention_parameters
from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.objectives import answer_nll
from grin_core.unlearning.privacy_schedule import REPAIR
from grin_core.unlearning.state_bytes import StateBytes


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
    losses = [
        (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weights).sum()
        / weights.sum().clamp_min(1)
        for logits in recorded
    ]
    return torch.stack(losses).mean()


class GrunTrainer(ForgetRetainTrainer):
    """GRUN's trainer: the base model with `module` attached; only the module's parameters train, and
    the gate's BCE joins the objective."""

    scratch_prefix = "grin-grun-"

    def __init__(
        self,
        model: PreTrainedModel,
        module: GrunModule,
        config: GrunConfig,
        forget: Dataset,
        retain: Dataset,
        tokenizer: PreTrainedTokenizerBase,
        callbacks: Sequence[TrainerCallback] = (),
        progress: bool = False,
        scheduled: bool = False,
    ) -> None:
        self.module = module
        self.gates = list(module.at.values())
        super().__init__(
            model,
            config,
            forget,
            retain,
            tokenizer,
            objective=config.objective,
            callbacks=callbacks,
            progress=progress,
            scheduled=scheduled,
        )

    def trainable(self):
        return frozen_except(self.model, self.module)

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
        logits, forget_gates = self._forward(model, inputs["input_ids"], inputs["attention_mask"])
        retain_logits, retain_gates = self._forward(model, inputs["retain_input_ids"], inputs["retain_attention_mask"])
        retain_nll = answer_nll(retain_logits, inputs["retain_labels"], global_token_scale)
        forget_t, forget_w = gate_targets(inputs["labels"], inputs["attention_mask"], forget=True)
        retain_t, retain_w = gate_targets(inputs["retain_labels"], inputs["retain_attention_mask"], forget=False)
        bce = (gate_bce(forget_gates, forget_t, forget_w) + gate_bce(retain_gates, retain_t, retain_w)) / 2
        weight = 0.0 if self.phase == REPAIR else self.forget_weight  # repair: retain and gate terms alone
        loss = self.objective_loss(logits, inputs, retain_nll, weight) + self.config.gate_weight * bce
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
        return {
            "config": self.config.to_dict(),
            "layers": list(self.module.layers),
            "timings": self.timings,
            "trainable_params": self.trainable_params,
            "total_intervention_params": self.total_intervention_params,
            "optimized_elements": self.trainable_params,
            "state_bytes": self.state_bytes.to_dict(),
            "history": self.history,
            "probes": self.probes,
            "base_weights_changed": False,
        }


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
    calibration_records: Sequence[Mapping[str, str]] | None = None,
) -> GrunResult:
    """Attach a new request's intervention to `model` (after any earlier ones) and train it alone.

    Records are {question, answer} mappings; their text is never logged. `holdout_records`,
    `target_auc`, `steer` and `calibration_records` (never-seen records: the level the schedule steers
    toward is measured again on the model) as in `grin_core.unlearning.unlearn.unlearn`.
    """
    set_seed(config.seed)
    timings: dict[str, float] = {}
    # before the new module exists: the reference is the model it starts from
    forget, retain = forget_retain_datasets(
        model, tokenizer, forget_records, retain_records, config.objective, config, timings
    )
    module = attach(model, config.shape(), seed=config.seed)
    trainer = GrunTrainer(
        model, module, config, forget, retain, tokenizer, callbacks, progress, scheduled=bool(holdout_records) and steer
    )
    run = run_scheduled(
        trainer,
        tokenizer,
        forget_records,
        retain_records,
        holdout_records,
        target_auc=target_auc,
        steer=steer,
        calibration_records=calibration_records,
    )
    timings["training_s"] = run.training_s
    return GrunResult(
        model=model,
        config=config,
        module=module,
        timings={k: round(v, 3) for k, v in timings.items()},
        trainable_params=sum(p.numel() for p in module.parameters()),
        total_intervention_params=intervention_parameters(model),
        state_bytes=trainer.state_meter.peak,
        history=run.history,
        probes=run.probes,
    )
