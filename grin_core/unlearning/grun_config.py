"""The hyper-parameters of one GRUN request (`GrunConfig`) and the shape of its intervention
(`GrunShape`), importable without torch: the service reads its defaults from here (tasks/contracts.py);
grun.py builds the intervention, grun_train.py trains it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from grin_core.unlearning.methods import GRUN_OBJECTIVES
from grin_core.unlearning.unlearn_config import PUSH_CONTROLS, UnlearnConfig

GATES = ("linear", "mlp")


@dataclass(frozen=True)
class GrunShape:
    """What one request's intervention looks like (saved with it; enough to rebuild it)."""

    layers: tuple[int, ...] | None = field(
        default=None,
        metadata={
            "help": "Decoder layers whose output is intervened on; None = three in the upper half "
            "(at 60, 80 and 100 %% of the depth), as the authors pick layers near the top."
        },
    )
    rank: int = field(default=4, metadata={"help": "Rank r of the intervention subspace (authors: 4)."})
    gate: str = field(default="mlp", metadata={"help": "'mlp' (d-256-64-1, the authors') or 'linear'."})

    def __post_init__(self) -> None:
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}")
        if self.rank < 1:
            raise ValueError("rank must be >= 1")
        if self.layers is not None:
            if not self.layers or any(not isinstance(i, int) or i < 0 for i in self.layers):
                raise ValueError("layers must be None or a non-empty tuple of layer indices >= 0")
            object.__setattr__(self, "layers", tuple(sorted(set(self.layers))))

    def resolved_layers(self, num_layers: int) -> tuple[int, ...]:
        layers = self.layers or tuple(sorted({max(0, round(num_layers * f) - 1) for f in (0.6, 0.8, 1.0)}))
        if max(layers) >= num_layers:
            raise ValueError(f"layer {max(layers)} does not exist: the model has {num_layers} decoder layers")
        return layers

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


@dataclass(frozen=True)
class GrunConfig:
    """Hyper-parameters of one GRUN request (the authors' defaults, but the schedule's budget);
    `to_dict()` is audited."""

    objective: str = field(default="npo", metadata={"help": "Unlearning term: 'npo' or 'graddiff'."})
    layers: tuple[int, ...] | None = field(default=None, metadata={"help": GrunShape.help()["layers"]})
    rank: int = field(default=4, metadata={"help": GrunShape.help()["rank"]})
    gate: str = field(default="mlp", metadata={"help": GrunShape.help()["gate"]})
    gate_weight: float = field(default=1.0, metadata={"help": "Weight of the gate's BCE term."})
    alpha: float = field(default=1.0, metadata={"help": "Weight of the retain-set NLL term."})
    beta: float = field(default=0.3, metadata={"help": "NPO inverse temperature (the service's NPO)."})
    learning_rate: float = field(default=4e-3, metadata={"help": "AdamW learning rate (authors: 4e-3)."})
    epochs: int = field(default=10, metadata={"help": "Passes over the forget set without holdout records."})
    max_epochs: int = field(
        default=60,
        metadata={
            "help": "With holdout records: the privacy schedule's budget, GRIN's (it stops once in band). The "
            "authors train 10-40 epochs; at 40 authors a 40-epoch budget ran out with retain ROUGE-L "
            "0.63x the target's, 60 ended in band at 0.93x (docs/benchmarks.md, GRUN levers)."
        },
    )
    batch_size: int = field(default=16, metadata={"help": "Forget examples per step (authors: 16)."})
    retain_batch_size: int | None = field(
        default=None, metadata={"help": "Retain examples per step; None = batch_size."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds the intervention's initialisation, sampling and training."})
    max_length: int = field(default=256, metadata={"help": "Token limit per QA example."})
    scoring_batch_size: int = field(default=16, metadata={"help": "Batch size of the reference and probe passes."})
    auc_margin: float = field(default=0.05, metadata={"help": UnlearnConfig.help()["auc_margin"]})
    retain_recovery: float = field(default=0.98, metadata={"help": UnlearnConfig.help()["retain_recovery"]})
    push_control: str = field(default="proportional", metadata={"help": UnlearnConfig.help()["push_control"]})

    def __post_init__(self) -> None:
        checks = [
            (self.objective in GRUN_OBJECTIVES, f"objective must be one of {GRUN_OBJECTIVES}"),
            (self.gate in GATES, f"gate must be one of {GATES}"),
            (self.rank >= 1, "rank must be >= 1"),
            (self.gate_weight >= 0 and self.alpha >= 0 and self.beta > 0, "gate_weight, alpha >= 0 and beta > 0"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (
                min(self.epochs, self.max_epochs, self.batch_size, self.retain_batch_size or 1) >= 1,
                "epochs and batch sizes must be >= 1",
            ),
            (
                0 < self.auc_margin < 0.25 and 0 <= self.retain_recovery <= 1,
                "auc_margin in (0, 0.25), retain_recovery in [0, 1]",
            ),
            (self.push_control in PUSH_CONTROLS, f"push_control must be one of {PUSH_CONTROLS}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.layers is not None:
            object.__setattr__(self, "layers", GrunShape(layers=tuple(self.layers)).layers)

    def shape(self) -> GrunShape:
        return GrunShape(layers=self.layers, rank=self.rank, gate=self.gate)

    @property
    def length_normalised(self) -> bool:
        """GRUN's NPO is the service's: on the per-token log-ratio (not a field: never another choice)."""
        return True

    def to_dict(self) -> dict:
        return asdict(self)

    def training_options(self, scheduled: bool) -> dict:
        """`unlearning_arguments`' options of this run (the schedule's budget when it steers)."""
        return {
            "epochs": self.max_epochs if scheduled else self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
        }

    def schedule_options(self) -> dict:
        """The privacy schedule's settings of this run: GRIN's push control, no re-push or band factors."""
        return {
            "margin": self.auc_margin,
            "retain_recovery": self.retain_recovery,
            "push_control": self.push_control,
            "alpha": self.alpha,
        }

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}
