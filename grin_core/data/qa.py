"""QA records to tokenized examples whose loss covers the answer tokens only.

A record is a mapping with "question" and "answer" strings. An example has `input_ids`,
`attention_mask` and `labels` (-100 on BOS and question tokens), plus `length` for
length-grouped batching: unbucketed batches of mixed lengths cost 5x the time on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, PreTrainedTokenizerBase

from grin_core.data.prompts import prompt_ids

IGNORE_INDEX = -100


def encode_qa(
    question: str,
    answer: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int = 256,
    template: str | None = None,
) -> dict[str, list[int]]:
    """Tokenize one QA pair as the prompt (prompts.py; `template` None: the line's) + " " + answer
    + EOS, labels on answer and EOS.

    Prompt and answer are tokenized apart so the prompt's tokens are the same ones that
    generation later starts from.
    """
    prompt = prompt_ids(question, tokenizer, template)
    answer_ids = tokenizer.encode(" " + answer, add_special_tokens=False) + [tokenizer.eos_token_id]
    input_ids = (prompt + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + answer_ids)[:max_length]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": labels,
        "length": len(input_ids),
    }


def qa_dataset(
    records: Iterable[Mapping[str, str]], tokenizer: PreTrainedTokenizerBase, max_length: int = 256
) -> Dataset:
    """A `datasets.Dataset` of encoded QA pairs, in record order."""
    rows = [encode_qa(r["question"], r["answer"], tokenizer, max_length) for r in records]
    if not rows:
        raise ValueError("no QA records to encode")
    return Dataset.from_list(rows)


def qa_collator(tokenizer: PreTrainedTokenizerBase) -> DataCollatorForSeq2Seq:
    """Right-pads a batch; labels are padded with -100 so padding carries no loss."""
    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
