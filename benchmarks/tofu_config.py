"""What one `grin bench tofu` run is asked to do (`BenchConfig`), and the methods it knows.

Imports no torch: `grin --help` reads DEFAULT_METHODS from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.recipes import RECIPES
from grin_core.unlearning.methods import GRIN_OBJECTIVES

REPO_ROOT = Path(__file__).resolve().parents[1]
METHODS = (*(f"grin-{m}" for m in GRIN_OBJECTIVES), *GRIN_OBJECTIVES, "grun", "retrain")
# The service's default GRIN objective, GRIN-NPO (the paper's), full-parameter NPO, GRUN and retraining.
DEFAULT_METHODS = (f"grin-{GRIN_OBJECTIVES[0]}", "grin-npo", "npo", "grun", "retrain")
SWEEPS = {"p": "p_percent", "sigma2": "sigma2"}  # --sweep name -> UnlearnConfig field (GRIN-NPO)
DEFAULT_AUTHORS = 20
DEFAULT_EPOCHS = 8  # full-parameter baselines; GRIN methods default to UnlearnConfig.max_epochs (the schedule's budget)
SEEDED_METHOD = f"grin-{GRIN_OBJECTIVES[0]}"  # the method --seeds repeats: GRIN at the service's defaults

# GRIN keeps UnlearnConfig's defaults. Full-parameter runs move every weight, so they need a much
# smaller step; these were picked by the sweep in docs/benchmarks.md.
FULL_PARAMETER_LEARNING_RATE = {"npo": 1e-4, "match": 1e-4, "graddiff": 1e-4, "po": 1e-4}

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
    resume_dir: Path | None = None  # finished parts kept here; a rerun resumes (bench_memo.py)

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
        if self.epochs is None and RECIPES[self.recipe].unlearn_epochs is not None:
            object.__setattr__(self, "epochs", RECIPES[self.recipe].unlearn_epochs)  # the recipe's budget
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
        from grin_core.unlearning.unlearn_config import UnlearnConfig

        grin = name.startswith("grin-")
        objective = name.removeprefix("grin-")
        default_lr = UnlearnConfig.learning_rate if grin else FULL_PARAMETER_LEARNING_RATE[objective]
        epochs = self.epochs if self.epochs is not None else (UnlearnConfig.epochs if grin else DEFAULT_EPOCHS)
        budget = {"max_epochs": self.epochs} if self.epochs is not None and grin else {}
        values = {
            "method": objective,
            "full_parameter": not grin,
            "epochs": epochs,
            "seed": self.seed,
            **budget,
            "learning_rate": self.learning_rates.get(name, default_lr),
            **overrides,
        }
        return UnlearnConfig(**values)

    def grun_config(self, **overrides):
        """GRUN's config: GrunConfig's defaults (the authors'); `--epochs` sets its budget as GRIN's."""
        from grin_core.unlearning.grun_config import GrunConfig

        budget = {"epochs": self.epochs, "max_epochs": self.epochs} if self.epochs is not None else {}
        lr = {"learning_rate": self.learning_rates["grun"]} if "grun" in self.learning_rates else {}
        return GrunConfig(**{"seed": self.seed, **budget, **lr, **overrides})

    def steers(self, name: str) -> bool:
        """Whether a method runs the privacy schedule (GRIN and GRUN, unless --no-schedule) or only records it."""
        return self.schedule and (name.startswith("grin-") or name == "grun")
