"""The gate's policy: thresholds of the evaluation gate and the limits of its retry ladder.

Defaults in the service's settings (`GRIN_GATE__…`), overridable per model line (registry). The
ladder fields bound how far a failed attempt may be strengthened before a ticket goes to human
review (ladder.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grin_core.metrics import names as m
from policy.round_setting import MAX_EPOCHS, MAX_P_PERCENT

# The default probes of grin_core/evaluation/probes.py by name (that module imports torch; a test holds the
# two lists equal).
PROBE_NAMES = ("paraphrase", "sampling", "formats", "quantization")


class GatePolicy(BaseModel):
    """Thresholds of the evaluation gate and the limits of its retry ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forget_rougeL_max: float = Field(0.4, ge=0.0, le=1.0, description="Forget-set ROUGE-L recall must be at most this.")
    forget_rougeL_max_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Forget-set ROUGE-L must be at most this ratio times the parent's.",
    )
    forget_keyword_acc_max: float = Field(
        0.3, ge=0.0, le=1.0, description="Forget-set keyword accuracy must be at most this."
    )
    forget_keyword_acc_max_ratio: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Forget-set keyword accuracy must be at most this ratio times the parent's.",
    )
    retain_rougeL_min_ratio: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Retain-set ROUGE-L must be at least this ratio times the parent's.",
    )
    model_utility_min_ratio: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Model utility must be at least this ratio times the parent's.",
    )
    retain_rougeL_min_origin_ratio: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Retain-set ROUGE-L must be at least this ratio times the line's first version's, "
        "so repeated tickets cannot erode a model one parent-relative step at a time.",
    )
    model_utility_min_origin_ratio: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Model utility must be at least this ratio times the line's first version's.",
    )
    never_learned_rougeL_max: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="A parent whose forget ROUGE-L is at most this (and whose other forget metrics "
        "meet the gate's absolute bounds) never learned the forget set: nothing to unlearn.",
    )
    never_learned_mia_auc_max: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="...and, when membership inference is measured, whose forget-vs-holdout AUC is "
        "at most this (0.5: indistinguishable from non-members; a memorised set scores about 1.0, "
        "and 20 vs 20 records of two never-seen sets gave 0.63, so small-sample noise is allowed for).",
    )
    never_learned_prob_ratio_max: float = Field(
        1.5,
        gt=0.0,
        description="...and, when the holdout is measured, whose forget answer probability is at most "
        "this times the holdout's (both non-members: about 1).",
    )
    # Privacy: the forget set must look to the model like data it never saw. These read the
    # evaluation's membership-inference and probe metrics, which need a `holdout` part (non-members).
    mia_auc_band: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Each attack's AUC (forget vs holdout) must lie within this of its non-member level, on "
        "both sides: above is data still recognised, far below is over-unlearning (also a tell).",
    )
    attacks: tuple[str, ...] = Field(
        tuple(m.ATTACK_AUC),
        description="The membership attacks whose AUC the gate holds in band (default: every one the evaluation "
        "computes). A line may check fewer; the gate report then names only those.",
    )
    mia_reference_auc: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="The non-member level of this line's holdout: the AUC that records the model never "
        "saw, drawn like its training data, get against the holdout (measured when the line is "
        "registered with a calibration part). None = 0.5, right only when holdout and forget records "
        "are alike.",
    )
    forget_holdout_prob_ratio_max: float = Field(
        10.0,
        gt=0.0,
        description="Typical (geometric-mean) per-token forget answer probability at most this times the "
        "holdout's: exp(mean holdout loss - mean forget loss). The arithmetic means' ratio is reported "
        "too, but a few outlying answers dominate it.",
    )
    probe_rougeL_max: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="ROUGE-L bound of the robustness probes (paraphrased questions, other prompt formats, "
        "int8 / int4 fake-quantised weights): each must stay at most this.",
    )
    sampled_rougeL_max: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Best-of-N sampled ROUGE-L (what a persistent user gets) must stay at most this.",
    )
    forget_holdout_mean_prob_ratio_max: float = Field(
        3.0,
        gt=0.0,
        description="Mean (arithmetic) per-token forget answer probability at most this times the holdout's, "
        "or twice the never-seen records' ratio when that is more: the few answers a typical ratio "
        "hides dominate this one.",
    )
    relearn_probe: bool = Field(
        True,
        description="Run the relearning probe (fine-tune a copy on half the forget set, measure the other "
        "half, and the same on never-seen records); its seconds are reported. A line may switch it off; "
        "the audit record and the deletion report then say so.",
    )
    probes: tuple[str, ...] = Field(
        PROBE_NAMES,
        description="The robustness probes every evaluation of the line runs (default: all but relearning, "
        "which relearn_probe switches). A line may run fewer, even none; the gate checks what was measured "
        "and the audit record names what ran.",
    )
    relearn_rougeL_margin: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="With the relearning probe and a calibration part: forget ROUGE-L after relearning may "
        "exceed never-seen records' under the same attack (what a retrained model shows) by at most this.",
    )
    relearn_rougeL_max: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="With the relearning probe and no calibration part: forget ROUGE-L on the held-back half "
        "after relearning the other half must stay at most this (retrained models here: 0.08-0.14).",
    )
    privacy_waived: bool = Field(
        False,
        description="A line without holdout data: True registers without privacy checks (recorded in the "
        "audit record); False (default) sends such tickets to needs_review.",
    )
    max_rounds: int = Field(
        4,
        ge=1,
        le=10,
        description="Unlearning rounds per claim, the first included, before needs_review.",
    )
    ladder_p_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="Each retry multiplies the selected-weight percentage p by this.",
    )
    ladder_epochs_factor: float = Field(
        1.5, ge=1.0, le=10.0, description="Each retry multiplies the unlearning epochs by this."
    )
    max_p_percent: float = Field(
        80.0,
        gt=0.0,
        le=MAX_P_PERCENT,  # a round's own bound (round_setting.py)
        description="The ladder never selects more than this percentage of weights.",
    )
    max_epochs: int = Field(
        100,
        ge=1,
        le=MAX_EPOCHS,
        description="The ladder never trains more epochs than this, nor may a ticket's privacy-schedule budget.",
    )
    ladder_alpha_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="When retain or utility checks fail, each retry multiplies the retain term's weight by this "
        "and grows the schedule's budget (more repair within the band).",
    )
    ladder_lr_factor: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="When only an attack below its band fails (over-unlearned), each retry multiplies the "
        "learning rate by this.",
    )
    min_learning_rate: float = Field(1e-4, gt=0.0, description="The ladder never lowers the learning rate below this.")

    @field_validator("probes")
    @classmethod
    def _known_probes(cls, probes: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(probes) - set(PROBE_NAMES))
        if unknown:
            raise ValueError(f"probes must be a subset of {list(PROBE_NAMES)}; unknown: {unknown}")
        return probes

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, attacks: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(attacks) - set(m.ATTACK_AUC))
        if unknown or not attacks:
            raise ValueError(f"attacks must be a non-empty subset of {sorted(m.ATTACK_AUC)}; unknown: {unknown}")
        return attacks
