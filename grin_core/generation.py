"""Batched greedy answers to questions, as TOFU's ROUGE metrics read them.

Prompts are tokenized exactly as in training (BOS + prompt, data.py), sorted by length so a batch
carries little padding, left-padded so every row ends where generation starts, and decoded with
`model.generate`; the answer is the decoded new tokens, stripped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.data import format_prompt


def prompt_ids(question: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of BOS + prompt, the same tokens `encode_qa` puts before an answer."""
    return [tokenizer.bos_token_id] + tokenizer.encode(format_prompt(question), add_special_tokens=False)


@torch.no_grad()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    max_new_tokens: int = 96,
    batch_size: int = 64,
    progress: bool = False,
) -> list[str]:
    """Greedy answers to `questions`, in their order; works on whatever device `model` is on."""
    encoded = [prompt_ids(q, tokenizer) for q in questions]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="generate", disable=not progress, leave=False):
        index = order[start : start + batch_size]
        batch = tokenizer.pad(
            {"input_ids": [encoded[i] for i in index]}, padding_side="left", return_tensors="pt"
        ).to(model.device)
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for i, text in zip(index, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
            answers[i] = text.strip()
    model.train(was_training)
    return answers
