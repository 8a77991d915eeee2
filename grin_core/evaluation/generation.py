"""Batched answers to questions: greedy, as TOFU's ROUGE metrics read them, or sampled.

Prompts are tokenized exactly as in training (BOS + prompt, data.py; another template for the
prompt-format probes), sorted by length so a batch carries little padding, left-padded so every
row ends where generation starts, and decoded with `model.generate`; the answer is the decoded new
tokens, stripped. `sample_answers` draws several answers per question at a temperature, seeded:
the same seed, inputs and batch size give the same samples, and the caller's global torch RNG is
left as it was (so sampling in a probe does not shift a training run's randomness).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.data.prompts import prompt_ids


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    max_new_tokens: int = 96,
    batch_size: int = 64,
    progress: bool = False,
    template: str | None = None,
) -> list[str]:
    """Greedy answers to `questions`, in their order; works on whatever device `model` is on."""
    return [
        texts[0]
        for texts in _generate(model, tokenizer, questions, max_new_tokens, batch_size, progress, template, sample=None)
    ]


def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    num_samples: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 96,
    batch_size: int = 64,
    progress: bool = False,
    template: str | None = None,
) -> list[list[str]]:
    """Per question, `num_samples` answers sampled at `temperature` (full distribution: no top-k /
    top-p), deterministic for a seed; `batch_size` counts questions, each batch generates
    batch_size * num_samples sequences."""
    if num_samples < 1 or not temperature > 0:
        raise ValueError("num_samples must be >= 1 and temperature > 0")
    with torch.random.fork_rng(devices=[model.device.index or 0] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _generate(
            model,
            tokenizer,
            questions,
            max_new_tokens,
            batch_size,
            progress,
            template,
            sample=(num_samples, temperature),
        )


@torch.no_grad()
def _generate(model, tokenizer, questions, max_new_tokens, batch_size, progress, template, sample):
    """Per question, the list of its decoded answers: one greedy (sample None), or
    sample = (num_samples, temperature) sampled ones."""
    n = sample[0] if sample else 1
    encoded = [prompt_ids(q, tokenizer, template) for q in questions]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[list[str]] = [[] for _ in encoded]
    was_training = model.training
    model.eval()
    starts = range(0, len(order), batch_size)
    options = (
        {"do_sample": True, "temperature": sample[1], "top_k": 0, "top_p": 1.0, "num_return_sequences": n}
        if sample
        else {"do_sample": False}
    )
    for start in tqdm(starts, desc="generate", disable=not progress, leave=False):
        index = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in index]}, padding_side="left", return_tensors="pt").to(
            model.device
        )
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **options,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]  # rows: question-major, n per question
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for row, text in enumerate(texts):
            answers[index[row // n]].append(text.strip())
    model.train(was_training)
    return answers
