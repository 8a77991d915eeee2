"""Answer likelihoods under teacher forcing, and TOFU's length-normalised probabilities.

Every TOFU probability metric, the truth ratio, keyword confidence and the membership-inference
loss read the same thing: the log-probability of each answer token (EOS included, as in training)
given BOS + prompt + the answer tokens before it. `answer_logprobs` computes that in length-sorted
batches; the rest are pure functions of its output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.data import IGNORE_INDEX, encode_qa


@torch.no_grad()
def answer_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "likelihood",
) -> list[torch.Tensor]:
    """Per pair, a float32 CPU tensor (|a|,) of log P(a_t | q, a_<t) over the answer tokens + EOS.

    Pairs are tokenized with `encode_qa`, so the labels are exactly the training labels.
    """
    if len(questions) != len(answers):
        raise ValueError("questions and answers differ in length")
    encoded = [encode_qa(q, a, tokenizer) for q, a in zip(questions, answers)]
    order = sorted(range(len(encoded)), key=lambda i: encoded[i]["length"])
    out: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        index = order[start : start + batch_size]
        width = max(encoded[i]["length"] for i in index)
        ids = torch.full((len(index), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(index), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            n = encoded[i]["length"]
            ids[row, :n] = torch.tensor(encoded[i]["input_ids"])
            labels[row, :n] = torch.tensor(encoded[i]["labels"])
            mask[row, :n] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        targets = labels[:, 1:]
        picked = -F.cross_entropy(  # log-prob of each target token, without a (B, T, V) copy
            logits[:, :-1].float().transpose(1, 2), targets.to(logits.device),
            ignore_index=IGNORE_INDEX, reduction="none",
        ).cpu()
        for row, i in enumerate(index):
            out[i] = picked[row][targets[row] != IGNORE_INDEX].clone()
    model.train(was_training)
    return out


def mean_logprob(logprobs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N,) float64: each answer's mean token log-probability (its negative is the per-example loss)."""
    return torch.stack([lp.double().mean() for lp in logprobs])


def normalised_probability(logprobs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N,) float64: TOFU's P(a|q)^(1/|a|) = exp(mean token log-probability), in (0, 1]."""
    return mean_logprob(logprobs).exp()


def option_probability(correct: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """(N,) share of the correct option: p_c / (p_c + sum_k p_k) over length-normalised probabilities.

    correct: (N,) normalised probabilities of the correct answers; wrong: (N, K) of the wrong
    options. TOFU's probability metric for real_authors and world_facts.
    """
    return correct / (correct + wrong.sum(dim=-1))
