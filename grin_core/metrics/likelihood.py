"""Answer likelihoods under teacher forcing, and TOFU's length-normalised probabilities.

Every TOFU probability metric, the truth ratio, keyword confidence and the membership-inference
loss read the same thing: the log-probability of each answer token (EOS included, as in training)
given BOS + prompt + the answer tokens before it. `answer_logprobs` computes that in length-sorted
batches; the rest are pure functions of its output. `answer_token_stats` adds, from the same
forward pass, the mean and spread of log p over the vocabulary at each answer position (Min-K%++).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.data.qa import IGNORE_INDEX, encode_qa


@dataclass(frozen=True)
class AnswerTokenStats:
    """Per answer token (EOS included), all (|a|,) float32 CPU tensors.

    logp: log P(a_t | q, a_<t); mu: E_v[log p_v] and sigma: sqrt(Var_v[log p_v]) over the whole
    next-token distribution p at that position - what Min-K%++ standardises logp with.
    """

    logp: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor


def _answer_batches(model, tokenizer, questions, answers, batch_size, progress, desc, template):
    """Yield (pair indices, logits (B, T-1, V) predicting each next token, targets (B, T-1)) per
    length-sorted batch; targets are IGNORE_INDEX except on answer tokens + EOS."""
    if len(questions) != len(answers):
        raise ValueError("questions and answers differ in length")
    encoded = [encode_qa(q, a, tokenizer, template=template) for q, a in zip(questions, answers)]
    order = sorted(range(len(encoded)), key=lambda i: encoded[i]["length"])
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
        yield index, logits[:, :-1], labels[:, 1:].to(logits.device)


@torch.no_grad()
def answer_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "likelihood",
    template: str | None = None,
) -> list[torch.Tensor]:
    """Per pair, a float32 CPU tensor (|a|,) of log P(a_t | q, a_<t) over the answer tokens + EOS.

    Pairs are tokenized with `encode_qa` (in `template`, the training format by default), so the
    labels are exactly the training labels.
    """
    out: list[torch.Tensor] = [torch.empty(0)] * len(questions)
    was_training = model.training
    model.eval()
    for index, logits, targets in _answer_batches(
        model, tokenizer, questions, answers, batch_size, progress, desc, template
    ):
        picked = -F.cross_entropy(  # log-prob of each target token, without a (B, T, V) copy
            logits.float().transpose(1, 2),
            targets,
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).cpu()
        keep = (targets != IGNORE_INDEX).cpu()
        for row, i in enumerate(index):
            out[i] = picked[row][keep[row]].clone()
    model.train(was_training)
    return out


@torch.no_grad()
def answer_token_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "likelihood",
    template: str | None = None,
) -> list[AnswerTokenStats]:
    """Per pair, `AnswerTokenStats` over the answer tokens + EOS, in the same batched pass as
    `answer_logprobs` (its `.logp` equals that function's output to float32 rounding).

    Only the answer positions' logits are taken out of the (B, T, V) batch, so the extra memory is
    two (n_answer_tokens, V) float32 tensors: log p, then p; E[log p] and E[(log p - mu)^2] are
    row-wise dot products (bmm) with the centring done in place, so no third tensor. (Centred
    rather than E[x^2] - mu^2 as OpenUnlearning writes it: the same value without float32
    cancellation, which for a near-uniform distribution costs ~1e-3 relative in sigma.)
    """
    out: list[AnswerTokenStats] = [AnswerTokenStats(*[torch.empty(0)] * 3)] * len(questions)
    was_training = model.training
    model.eval()
    for index, logits, targets in _answer_batches(
        model, tokenizer, questions, answers, batch_size, progress, desc, template
    ):
        keep = targets != IGNORE_INDEX
        logp_v = torch.log_softmax(logits[keep].float(), dim=-1)  # (n, V)
        logp = logp_v.gather(1, targets[keep].unsqueeze(1)).squeeze(1)
        p_v = logp_v.exp()
        mu = torch.bmm(p_v.unsqueeze(1), logp_v.unsqueeze(2)).view(-1)
        centred = logp_v.sub_(mu.unsqueeze(1)).square_()  # in place: logp_v is spent
        sigma = torch.bmm(p_v.unsqueeze(1), centred.unsqueeze(2)).view(-1).sqrt()
        counts = keep.sum(dim=1).tolist()
        for i, lp, m, s in zip(index, logp.cpu().split(counts), mu.cpu().split(counts), sigma.cpu().split(counts)):
            out[i] = AnswerTokenStats(lp.clone(), m.clone(), s.clone())
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
