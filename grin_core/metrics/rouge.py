"""ROUGE-L recall between a generated answer and the gold answer (TOFU's ROUGE metric)."""

from __future__ import annotations

from collections.abc import Sequence

from rouge_score import rouge_scorer

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(generations: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per pair: LCS(generation, reference) / len(reference), over stemmed word tokens.

    Shapes: two equal-length lists of strings -> a list of floats in [0, 1]. Recall, not F1, as in
    TOFU: an answer that repeats the gold answer and then rambles on still scores 1.
    """
    if len(generations) != len(references):
        raise ValueError("generations and references differ in length")
    return [_SCORER.score(ref, gen)["rougeL"].recall for gen, ref in zip(generations, references)]
