"""The evaluation gate's policy: thresholds a candidate checkpoint must meet to be registered.

Ratios compare the candidate with its parent version, so a policy stays meaningful across
models whose absolute scores differ. The retry ladder fields bound how far a failed attempt
may be strengthened before a ticket goes to human review.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GatePolicy(BaseModel):
    """Thresholds of the evaluation gate and the limits of its retry ladder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forget_rougeL_max: float = Field(
        0.4, ge=0.0, le=1.0, description="Forget-set ROUGE-L recall must be at most this."
    )
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
    max_rounds: int = Field(
        3,
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
        5.0,
        gt=0.0,
        le=100.0,
        description="The ladder never selects more than this percentage of weights.",
    )
    max_epochs: int = Field(
        40, ge=1, le=10_000, description="The ladder never trains more epochs than this."
    )
