"""Evaluate a model on an unlearning suite: TOFU metrics for whichever parts the suite has."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSuite:
    """Records per part; any part may be None (a ticket's forget set may have question/answer only).

    forget / retain: {question, answer[, paraphrased_answer, perturbed_answer: list, keywords]}
    real_authors / world_facts: {question, answer, perturbed_answer: list} (multiple choice)
    holdout: {question, answer}, the non-members for membership inference against forget
    """

    forget: list[dict] | None = None
    retain: list[dict] | None = None
    real_authors: list[dict] | None = None
    world_facts: list[dict] | None = None
    holdout: list[dict] | None = None
