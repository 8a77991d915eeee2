"""A schedule driven by the deletion's target: push until the forget set looks unseen, then repair.

After every epoch the model's membership-inference AUC of the forget set against non-member
(holdout) records is measured - loss only, two small likelihood passes. While it sits above the
target band (the forget answers are still more likely than a model that never saw them would
make them) the next epoch pushes: the unlearning objective plus the retain term.

Two ways to push (`push_control`). "proportional" (the default) weighs the forget term by the
remaining AUC gap over the gap before training: full strength far from the target, softer near it,
zero (repair: retain term alone) at or below it, so a small push keeps holding the forget set down
while retain is repaired. "full" is the bang-bang rule below: every push at full strength.
Measured on the 40-author benchmark (docs/benchmarks.md): full pushes overshot the band by up to
0.4 per epoch and alternated with repairs until the budget ran out (retain ROUGE-L 0.79-0.80);
proportional pushes ended with retain ROUGE-L 0.875 (retain batch 8) and 0.919 (retain batch 32).

The "full" rule: once the AUC is at most target + margin - or below the band, which is
over-unlearning and a tell of its own - the next epochs repair: the retain term alone, on the same
selected weights, until the retain probe's answer probability is back to `retain_recovery` x its
value before unlearning. Repair gives way to pushing again only if the AUC climbs above target + 2 x
margin (hysteresis), and such a second push runs at `repush_lr_factor` x the learning rate: one
full-rate epoch near the band moved the AUC by 0.4 (0.83 -> 0.46 -> 0.19 on the demo's model).

Either way training stops once the AUC is within target +- 2 x margin and retain has recovered, or
at the epoch budget; then the model goes back to the epoch with the highest retain probability among
those whose AUC was at most target + margin (and at least target - 2 x margin) - early stopping with
the best state, as `load_best_model_at_end` does, but on the deletion's criterion. Only the
trainable tensors are kept: with a sparse mask, k values. `alpha_max` (off by default) doubles the
retain weight while retain is below recovery; it kept retain high but slowed forgetting (lever table).

Why: NPO at a fixed beta either saturates far above the non-member level (beta 0.5) or drives the
forget set far below it while retain collapses (beta 0.02); the right stopping point differs per
model and request, and the target itself (the non-member level) is measurable while training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

from grin_core.evaluation.calibration import levels_of, scored_records
from grin_core.metrics.attacks import ATTACKS, attack_aucs, mean_probability
from grin_core.metrics.likelihood import answer_logprobs, mean_logprob
from grin_core.metrics.mia import scored_answer_text
from grin_core.runtime.flops import stage_meter
from grin_core.unlearning.unlearn_config import PUSH_CONTROLS, STOP_RULES

PUSH, REPAIR = "push", "repair"


class PrivacySchedule(TrainerCallback):
    """Sets `trainer.phase` ("push" / "repair") each epoch from the forget-vs-holdout loss AUC.

    target_auc: the non-member level (0.5 when holdout and forget records are alike, else the line's
    calibrated reference); margin: half-width of the band; steer=False only records the probes;
    `history` holds one probe per epoch
    (epoch 0 = before training) with the AUC and mean per-token probabilities - numbers only.
    """

    def __init__(
        self,
        trainer,
        tokenizer: PreTrainedTokenizerBase,
        forget: Sequence[Mapping[str, str]],
        holdout: Sequence[Mapping[str, str]],
        *,
        target_auc: float,
        margin: float,
        retain_recovery: float,
        repush_lr_factor: float = 1.0,
        push_control: str = "proportional",
        alpha: float = 1.0,
        alpha_max: float | None = None,
        band_lr_factor: float = 1.0,
        retain_probe: Sequence[Mapping[str, str]] = (),
        batch_size: int = 64,
        steer: bool = True,
        levels: Mapping[str, float] | None = None,
        calibration: Sequence[Mapping[str, str]] = (),
        stop_rule: str = "loss",
        attack_margin: float = 0.075,
        mean_prob_ratio_max: float = 3.0,
        nonmember_prob_ratio: float | None = None,
    ) -> None:
        if not forget or not holdout:
            raise ValueError("the privacy schedule needs forget and holdout records")
        self.trainer, self.tokenizer = trainer, tokenizer
        self.parts = {
            "forget": list(forget),
            "holdout": list(holdout),
            "retain": list(retain_probe),
            "calibration": list(calibration),
        }
        self.forget_texts = [scored_answer_text(r["answer"], tokenizer) for r in forget] if calibration else None
        self.margin, self.retain_recovery = margin, retain_recovery
        self.repush_lr_factor, self.entered_band = repush_lr_factor, False
        if push_control not in PUSH_CONTROLS:
            raise ValueError(f"push_control must be one of {PUSH_CONTROLS}")
        self.push_control, self.alpha, self.alpha_max = push_control, alpha, alpha_max
        self.band_lr_factor = band_lr_factor
        if stop_rule not in STOP_RULES:
            raise ValueError(f"stop_rule must be one of {STOP_RULES}")
        # every attack's non-member level: the loss attack's is target_auc, an attack without one 0.5
        self.levels = dict.fromkeys(ATTACKS, 0.5) | dict(levels or {}) | {"loss": target_auc}
        self.stop_rule, self.attack_margin = stop_rule, attack_margin
        self.mean_prob_ratio_max = mean_prob_ratio_max
        self.prob_ratio_bound = max(mean_prob_ratio_max, 2 * (nonmember_prob_ratio or 0.0))
        # a bounded objective (profile matching) is never turned down or off: the schedule watches and stops
        objective = getattr(trainer, "objective", None)
        self.bounded = bool(getattr(objective, "profiles", False))
        self.base_lrs: list[float] | None = None  # the scheduler's, before any re-push scaling
        self.batch_size, self.steer = batch_size, steer
        self.history: list[dict] = []
        self.retain_start: float | None = None
        self.best: tuple[float, float, list[torch.Tensor]] | None = None  # (retain prob, epoch, tensors)

    @property
    def target_auc(self) -> float:
        """The loss attack's level: what the loss stop rule steers toward (re-measured with the others)."""
        return self.levels["loss"]

    def probe(self, model, epoch: float) -> dict:
        """Every attack's forget-vs-holdout AUC, the mean probability ratio and the parts' mean answer
        probabilities; refreshes the forget answers' profile ranks when the objective matches profiles."""
        with stage_meter(getattr(self.trainer, "flop_meter", None), "probes"):
            return self._probe(model, epoch)

    def _probe(self, model, epoch: float) -> dict:
        # the loss stop rule reads one level, which barely moves while the forget set is unlearned: measured
        # on the model it starts from; every attack's (the 'attacks' rule) at every probe
        again = self.stop_rule == "attacks" or not self.history
        scored = {
            part: scored_records(model, self.tokenizer, self.parts[part], self.batch_size)
            for part in ("forget", "holdout", "calibration")
            if self.parts[part] and (part != "calibration" or again)
        }
        stats = {part: value[0] for part, value in scored.items()}
        scores = {part: value[1] for part, value in scored.items()}
        aucs = attack_aucs(scores["forget"], scores["holdout"])
        if "calibration" in scored:  # the levels move with the model: measured on it, as the gate will
            now = levels_of(scored["calibration"], scored["holdout"], self.forget_texts)
            self.levels = {**now.aucs}
            self.prob_ratio_bound = max(self.mean_prob_ratio_max, 2 * now.mean_prob_ratio)
            entry_levels = {**now.aucs, "prob_ratio_bound": self.prob_ratio_bound}
        else:
            entry_levels = None
        entry = {
            "epoch": round(float(epoch), 2),
            "phase": self.trainer.phase,
            "mia_auc": aucs["loss"],
            **{f"mia_{name}_auc": auc for name, auc in aucs.items() if name != "loss"},
        }
        entry["forget_prob"], entry["holdout_prob"] = (mean_probability(stats[p]) for p in ("forget", "holdout"))
        entry["prob_ratio"] = entry["forget_prob"] / max(entry["holdout_prob"], 1e-300)
        if entry_levels is not None:
            entry["levels"] = entry_levels
        if self.parts["retain"]:
            records = self.parts["retain"]
            lps = answer_logprobs(
                model,
                self.tokenizer,
                [r["question"] for r in records],
                [r["answer"] for r in records],
                batch_size=self.batch_size,
            )
            entry["retain_prob"] = torch.exp(mean_logprob(lps)).mean().item()
        if getattr(self.trainer, "profiles", None) is not None:
            self.trainer.profiles.set_ranks([-x for x in scores["forget"]["loss"]])
        self.history.append(entry)
        return entry

    def attacks_in_band(self, entry: Mapping[str, float]) -> bool:
        """Every attack within attack_margin of its level, and the mean probability ratio within bound."""
        aucs = {"loss": entry["mia_auc"], **{name: entry[f"mia_{name}_auc"] for name in self.levels if name != "loss"}}
        return (
            all(abs(aucs[name] - level) <= self.attack_margin for name, level in self.levels.items())
            and entry["prob_ratio"] <= self.prob_ratio_bound
        )

    def _next_phase(self, auc: float, current: str) -> str:
        if not self.steer or self.bounded:  # observe only, or an objective that stops at its own target
            return PUSH
        limit = self.target_auc + (2 if current == REPAIR else 1) * self.margin
        return PUSH if auc > limit else REPAIR

    def _forget_weight(self, auc: float) -> float:
        """Proportional control: the remaining gap to the target over the gap before training."""
        gap = self.history[0]["mia_auc"] - self.target_auc
        return min(1.0, max(0.0, (auc - self.target_auc) / gap)) if gap > 0 else 0.0

    def _steer_weights(self, entry: dict) -> None:
        """Set the next epoch's forget and retain weights (the trainer's loss mix)."""
        if self.push_control == "proportional" and not self.bounded:
            self.trainer.forget_weight = self._forget_weight(entry["mia_auc"])
            self.trainer.phase = PUSH if self.trainer.forget_weight > 0 else REPAIR
        if self.alpha_max is not None:
            weight = self.trainer.retain_weight
            weight = min(self.alpha_max, 2 * weight) if not self._recovered(entry) else max(self.alpha, weight / 2)
            self.trainer.retain_weight = weight
        entry["forget_weight"], entry["retain_weight"] = self.trainer.forget_weight, self.trainer.retain_weight

    def _recovered(self, entry: dict) -> bool:
        if self.retain_start is None or "retain_prob" not in entry:
            return True
        return entry["retain_prob"] >= self.retain_recovery * self.retain_start

    STATE_KEYS = ("history", "entered_band", "base_lrs", "retain_start", "best", "levels", "prob_ratio_bound")

    def state_dict(self) -> dict:
        """What a resumed run needs to steer on as if never interrupted (resume.py)."""
        state = {key: getattr(self, key) for key in self.STATE_KEYS}
        if getattr(self.trainer, "profiles", None) is not None:
            state["profiles"] = self.trainer.profiles.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for key in self.STATE_KEYS:
            setattr(self, key, state[key])
        if getattr(self.trainer, "profiles", None) is not None and "profiles" in state:
            self.trainer.profiles.load_state_dict(state["profiles"])
        if self.best is not None:
            self.best = (self.best[0], self.best[1], list(self.best[2]))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.history:  # resumed: epoch 0 was probed by the run that started it
            return
        self.trainer.phase = PUSH
        entry = self.probe(model, 0)
        self.retain_start = entry.get("retain_prob")
        self.trainer.phase = self._next_phase(entry["mia_auc"], PUSH)
        if self.steer:
            self._steer_weights(entry)

    def _scale_learning_rate(self, factor: float) -> None:
        scheduler = getattr(self.trainer, "lr_scheduler", None)
        scheduler = getattr(scheduler, "scheduler", scheduler)  # accelerate wraps it
        if scheduler is None or not hasattr(scheduler, "base_lrs"):
            return
        if self.base_lrs is None:
            self.base_lrs = list(scheduler.base_lrs)
        scheduler.base_lrs = [lr * factor for lr in self.base_lrs]
        for group, lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=False):
            group["lr"] = lr

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        entry = self.probe(model, state.epoch or 0)
        self.trainer.phase = self._next_phase(entry["mia_auc"], entry["phase"])
        if self.steer:
            self._steer_weights(entry)
        if self.steer and self.trainer.phase == REPAIR:
            self.entered_band = True
        # gentler pushes once the band has been reached
        if self.steer and self.entered_band and self.push_control == "full":
            self._scale_learning_rate(self.repush_lr_factor if self.trainer.phase == PUSH else 1.0)
        elif self.steer and self.push_control == "proportional" and entry["mia_auc"] <= self.target_auc + self.margin:
            self.entered_band = True
        if self.steer and self.entered_band and self.push_control == "proportional":
            self._scale_learning_rate(self.band_lr_factor)  # smaller steps both ways near the target
        if self.stop_rule == "attacks":
            in_band = keepable = self.attacks_in_band(entry)
        else:
            in_band = abs(entry["mia_auc"] - self.target_auc) <= 2 * self.margin
            keepable = self.target_auc - 2 * self.margin <= entry["mia_auc"] <= self.target_auc + self.margin
        entry["in_band"] = in_band
        score = entry.get("retain_prob", 0.0)
        if self.steer and keepable and (self.best is None or score > self.best[0]):
            self.best = (score, entry["epoch"], [p.detach().clone() for p in model.parameters() if p.requires_grad])
        settled = self.trainer.phase == REPAIR or self.push_control == "proportional" or self.bounded
        if self.steer and settled and in_band and self._recovered(entry):
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        """Back to the best in-band epoch (if the last one is not it)."""
        if self.best is None or self.best[1] == self.history[-1]["epoch"]:
            return
        with torch.no_grad():
            for param, kept in zip((p for p in model.parameters() if p.requires_grad), self.best[2], strict=True):
                param.copy_(kept)
        self.history.append({**next(e for e in self.history if e["epoch"] == self.best[1]), "phase": "restored"})
