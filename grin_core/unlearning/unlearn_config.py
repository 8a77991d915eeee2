"""The hyper-parameters of one GRIN unlearning run (`UnlearnConfig`), importable without torch.

The service reads its defaults from here (tasks/contracts.py) in processes that never train, so
this module imports no torch; unlearn.py runs a config, training_args.py turns it into
`TrainingArguments`. The Defaults paragraph of unlearn.py says where the defaults come from.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

UPDATES = ("sparse", "dense")  # masked_update.py: optimise the selected entries only, or masked whole tensors
PUSH_CONTROLS = ("full", "proportional")  # privacy_schedule.py: how strongly a push epoch weighs the forget term
STOP_RULES = ("loss", "attacks")  # privacy_schedule.py: which attacks must be in band to stop


def _scheduler_names() -> set[str]:
    from transformers import SchedulerType  # imports torch: only when a config is checked

    return {s.value for s in SchedulerType}


def _profiles(method: str) -> bool:
    from grin_core.unlearning.objective_registry import OBJECTIVES

    return OBJECTIVES[method].profiles


def _objective_names() -> tuple[str, ...]:
    from grin_core.unlearning.objective_registry import OBJECTIVES  # imports torch, as above

    return OBJECTIVES.names()


@dataclass(frozen=True)
class UnlearnConfig:
    """Hyper-parameters of one unlearning run; `to_dict()` goes into the audit record."""

    method: str = field(
        default="match",
        metadata={
            "help": "Objective, by name (objective_registry.OBJECTIVES): 'match' (default: never-seen profile "
            "matching), 'npo', 'simnpo' (length-normalised, no reference), 'graddiff', 'po' or any objective "
            "registered there."
        },
    )
    alpha: float = field(default=4.0, metadata={"help": "Weight of the retain-set NLL term."})
    beta: float = field(default=0.3, metadata={"help": "NPO inverse temperature (paper: 0.1; see Defaults above)."})
    learning_rate: float = field(
        default=3e-3, metadata={"help": "AdamW learning rate for a ~2% mask; full-parameter runs need ~1e-4."}
    )
    epochs: int = field(default=8, metadata={"help": "Passes over the forget set of a run without holdout records."})
    max_epochs: int = field(
        default=30,
        metadata={"help": "With holdout records: the privacy schedule's budget of passes (it stops once in band)."},
    )
    batch_size: int = field(default=8, metadata={"help": "Forget examples per step."})
    retain_batch_size: int | None = field(
        default=32,
        metadata={
            "help": "Retain examples per step; None = batch_size. 4x the forget batch: the retain term's "
            "gradient is steadier and each repair epoch sees 4x the retain data (lever table)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seeds training, retain sampling and the noise."})
    p_percent: float = field(
        default=30.0,
        metadata={
            "help": "Share of eligible weights selected, in percent (paper: 0.2-0.8 for 7B models; a per-model-size "
            "setting: see unlearn.py's Defaults)."
        },
    )
    sigma2: float = field(default=1e-3, metadata={"help": "Variance of the noise added to selected weights; 0 = none."})
    eps: float = field(default=1e-8, metadata={"help": "GRI denominator stabiliser: |G_f| / (|G_r| + eps)."})
    eligible_modules: tuple[str, ...] | None = field(
        default=None,
        metadata={
            "help": "Linear layers to score, by attribute name (e.g. ('gate_proj', 'up_proj')); None = every "
            "linear layer inside the decoder layers."
        },
    )
    update: str = field(
        default="sparse",
        metadata={
            "help": "'sparse': optimise only the selected entries (state scales with p); 'dense': whole "
            "tensors with a gradient mask."
        },
    )
    full_parameter: bool = field(
        default=False,
        metadata={"help": "Baseline: train every parameter (plain NPO/GradDiff/PO); no scoring, mask or noise."},
    )
    lr_scheduler: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    scoring_batch_size: int = field(default=16, metadata={"help": "Batch size of the GRI and reference passes."})
    max_length: int = field(default=256, metadata={"help": "Token limit per QA example."})
    gamma: float = field(default=0.0, metadata={"help": "SimNPO reward margin."})
    length_normalised: bool = field(
        default=True,
        metadata={
            "help": "NPO on the per-token (mean) answer log-likelihood ratio instead of the summed one: the "
            "summed ratio saturates NPO far above unseen-data likelihood (docs/benchmarks.md's lever table)."
        },
    )
    auc_margin: float = field(
        default=0.05,
        metadata={"help": "Privacy schedule: half-width of the band around the non-member AUC it steers into."},
    )
    repush_lr_factor: float = field(
        default=0.3,
        metadata={"help": "Privacy schedule: learning-rate factor of a push after the band was first reached."},
    )
    push_control: str = field(
        default="proportional",
        metadata={
            "help": "Privacy schedule: 'full' pushes with the whole forget term (learning rate x repush_lr_factor "
            "after the band was reached); 'proportional' weighs the forget term by the remaining AUC gap "
            "over the gap before training, so pushes soften near the band and a small one holds it."
        },
    )
    band_lr_factor: float = field(
        default=1.0,
        metadata={
            "help": "Privacy schedule, proportional control: learning-rate factor of every epoch once the AUC "
            "first reached target + margin (pushes and repairs)."
        },
    )
    alpha_max: float | None = field(
        default=None,
        metadata={
            "help": "Privacy schedule: while the retain probe is below retain_recovery x its start, the retain "
            "weight doubles each epoch up to this, and halves back to alpha once it is above; None = fixed alpha."
        },
    )
    retain_recovery: float = field(
        default=0.98,
        metadata={
            "help": "Privacy schedule: repair (retain-only) until the retain answer probability is back to "
            "this fraction of its value before unlearning."
        },
    )
    z_weight: float = field(
        default=1.0,
        metadata={"help": "match: weight of the z-score profile term (Min-K%++'s statistic) beside the log-prob one."},
    )
    profile_delta: float = field(
        default=1.0,
        metadata={
            "help": "match: Huber threshold of the profile terms, in nats (a far-off token pulls with at most this)."
        },
    )
    relearn_guard: float = field(
        default=1.0,
        metadata={"help": "Weight of the simulated relearning attack (relearn_guard.py) on each push step; 0 = off."},
    )
    relearn_guard_stat: str = field(
        default="profile",
        metadata={
            "help": "What the simulated attack may not raise above the never-seen target: 'profile' (every sorted "
            "token) or 'mean' (each answer's mean log-prob)."
        },
    )
    relearn_eps: float = field(
        default=3e-3,
        metadata={
            "help": "The simulated attacker's sign step on every weight: about its learning rate times the "
            "steps it takes; a per-model-scale setting like the learning rate."
        },
    )
    stop_rule: str | None = field(
        default=None,
        metadata={
            "help": "Privacy schedule: 'loss' stops once the loss attack is in band; 'attacks' once every "
            "attack (metrics/attacks.py) is within attack_margin of its non-member level and the "
            "mean forget/holdout probability ratio is within bound. None: 'attacks' for an objective "
            "that matches never-seen profiles, 'loss' for one that only pushes (NPO cannot hold "
            "Min-K%++ in band, so steering it on every attack would only spend the budget)."
        },
    )
    attack_margin: float = field(
        default=0.075,
        metadata={"help": "Privacy schedule, stop_rule 'attacks': half-width of each attack's band around its level."},
    )
    mean_prob_ratio_max: float = field(
        default=3.0,
        metadata={
            "help": "Privacy schedule, stop_rule 'attacks': the mean forget/holdout answer probability ratio "
            "must be at most max(this, 2 x the never-seen records' ratio)."
        },
    )
    mixed_precision: bool = field(
        default=False,
        metadata={
            "help": "bf16 autocast for the reference pass and training on GPUs that support it. Off by default: "
            "on an H100 bf16 backward gave whole batches non-finite gradients where fp32 did not "
            "(gri.py). GRI scoring always runs in fp32."
        },
    )

    def __post_init__(self) -> None:
        objectives = _objective_names()
        if self.stop_rule is None and self.method in objectives:
            object.__setattr__(self, "stop_rule", "attacks" if _profiles(self.method) else "loss")
        checks = [
            (
                self.method in objectives,
                f"unknown unlearning objective {self.method!r}; known: {', '.join(objectives)}",
            ),
            (self.update in UPDATES, f"update must be one of {UPDATES}"),
            (self.alpha >= 0, "alpha must be >= 0"),
            (math.isfinite(self.beta) and self.beta > 0, "beta must be a finite number > 0"),
            (
                0 < self.auc_margin < 0.25 and 0 <= self.retain_recovery <= 1 and 0 < self.repush_lr_factor <= 1,
                "auc_margin in (0, 0.25), retain_recovery in [0, 1], repush_lr_factor in (0, 1]",
            ),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (self.push_control in PUSH_CONTROLS, f"push_control must be one of {PUSH_CONTROLS}"),
            (self.stop_rule in STOP_RULES, f"stop_rule must be one of {STOP_RULES}"),
            (
                self.z_weight >= 0 and self.profile_delta > 0 and self.relearn_guard >= 0 and self.relearn_eps > 0,
                "z_weight >= 0, profile_delta > 0, relearn_guard >= 0 and relearn_eps > 0",
            ),
            (
                0 < self.attack_margin < 0.5 and self.mean_prob_ratio_max > 0,
                "attack_margin in (0, 0.5) and mean_prob_ratio_max > 0",
            ),
            (0 < self.band_lr_factor <= 1, "band_lr_factor must be in (0, 1]"),
            (self.alpha_max is None or self.alpha_max >= self.alpha, "alpha_max must be None or >= alpha"),
            (
                self.epochs >= 1
                and self.max_epochs >= 1
                and self.batch_size >= 1
                and self.scoring_batch_size >= 1
                and (self.retain_batch_size is None or self.retain_batch_size >= 1),
                "epochs and batch sizes must be >= 1",
            ),
            (0 < self.p_percent <= 100, "p_percent must be in (0, 100]"),
            (self.sigma2 >= 0, "sigma2 must be >= 0"),
            (self.eps > 0, "eps must be > 0"),
            (self.warmup_steps >= 0 and self.max_grad_norm > 0, "warmup_steps >= 0 and max_grad_norm > 0"),
            (self.max_length >= 8, "max_length must be >= 8"),
            (self.lr_scheduler in _scheduler_names(), f"unknown lr_scheduler {self.lr_scheduler!r}"),
            (
                self.eligible_modules is None
                or (len(self.eligible_modules) > 0 and all(isinstance(m, str) for m in self.eligible_modules)),
                "eligible_modules must be None or a non-empty tuple of names",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.eligible_modules is not None:
            object.__setattr__(self, "eligible_modules", tuple(self.eligible_modules))

    def to_dict(self) -> dict:
        return asdict(self)

    def training_options(self, scheduled: bool) -> dict:
        """`unlearning_arguments`' options of this run (the schedule's budget when it steers)."""
        return {
            "epochs": self.max_epochs if scheduled else self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "mixed_precision": self.mixed_precision,
            "lr_scheduler": self.lr_scheduler,
            "warmup_steps": self.warmup_steps,
            "max_grad_norm": self.max_grad_norm,
        }

    def schedule_options(self) -> dict:
        """The privacy schedule's settings of this run (privacy_schedule.py)."""
        return {
            "margin": self.auc_margin,
            "retain_recovery": self.retain_recovery,
            "repush_lr_factor": self.repush_lr_factor,
            "push_control": self.push_control,
            "alpha": self.alpha,
            "alpha_max": self.alpha_max,
            "band_lr_factor": self.band_lr_factor,
            "stop_rule": self.stop_rule,
            "attack_margin": self.attack_margin,
            "mean_prob_ratio_max": self.mean_prob_ratio_max,
        }

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}
