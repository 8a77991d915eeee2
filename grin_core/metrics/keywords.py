"""GRIN's keyword metrics (Anjarlekar & Pombra 2025, arXiv 2508.06467) on TOFU's key phrases.

Each forget question carries the `forget*_fts.json` phrases (names, places, titles) that occur in
its gold answer but not in the question itself (tofu.attach_keywords: a name the question gives is
echoed by any model); a question with none takes no part. Over all
(question, keyword) pairs:
- keyword accuracy: the fraction whose keyword appears (case-insensitive) in the model's greedy
  answer - does the model still *say* the sensitive fact;
- keyword confidence: the mean, over pairs, of the model's per-token probability of the keyword's
  tokens where they stand in the gold answer, exp(mean log P) under teacher forcing - how sure it
  still is of the fact even when greedy decoding no longer emits it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase


def keyword_accuracy(generations: Sequence[str], keywords: Sequence[Sequence[str]]) -> float | None:
    """Fraction of (generation, keyword) pairs whose keyword occurs in the generation; None if no pairs.

    generations: N strings; keywords: N lists of phrases (empty lists count for nothing).
    """
    hits = [k.lower() in g.lower() for g, ks in zip(generations, keywords, strict=True) for k in ks]
    return sum(hits) / len(hits) if hits else None


def keyword_token_positions(answer: str, keyword: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Indices, among the answer's tokens (as `encode_qa` tokenizes " " + answer), of the tokens that
    overlap the first occurrence of `keyword`; [] if the keyword is not in the answer."""
    start = answer.find(keyword)
    if start < 0:
        return []
    start, end = start + 1, start + 1 + len(keyword)  # +1: encode_qa prefixes the answer with " "
    offsets = tokenizer(" " + answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [i for i, (a, b) in enumerate(offsets) if a < end and b > start]


def keyword_confidence(
    answer_logprobs: Sequence[torch.Tensor], positions: Sequence[Sequence[Sequence[int]]]
) -> float | None:
    """Mean over (answer, keyword) pairs of exp(mean log-prob of the keyword's tokens); None if none.

    answer_logprobs: N tensors (|a_i|,) from `answer_logprobs`; positions: per answer, one list of
    token indices per keyword (from `keyword_token_positions`); empty index lists are skipped.
    """
    probs = [
        lp[idx].double().mean().exp().item()
        for lp, spans in zip(answer_logprobs, positions, strict=True)
        for idx in spans
        if idx
    ]
    return sum(probs) / len(probs) if probs else None
