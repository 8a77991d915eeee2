"""The cost yardstick for GRI scoring: one timed forward+backward pass over QA records.

GRI scoring (gri.py) runs one forward+backward pass over the forget set and one over the retain
set. Its cost is best stated relative to a plain training-style pass over the same records: the
same length-sorted batches, every parameter receiving the gradient of the token-mean answer loss,
no optimizer step. Encoding the records is timed too, as it is in scoring.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.scoring.gri import batches, encoded_records
from grin_core.unlearning.objectives import answer_nll


def forward_backward_seconds(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Mapping[str, str]],
    *,
    batch_size: int = 16,
    max_length: int = 256,
) -> float:
    """Wall seconds of one forward+backward pass over `records` {question, answer}.

    Every parameter gets a gradient (accumulated over the batches, as a training epoch without
    optimizer steps would); weights never change. Eval mode, as in GRI scoring. Gradients,
    `requires_grad` flags and the train/eval mode are restored afterwards; on CUDA the clock
    stops after a synchronize.
    """
    flags = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    try:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
        started = time.perf_counter()
        dataset = encoded_records(records, tokenizer, max_length)
        for batch in batches(dataset, tokenizer, batch_size):
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # fp32, as GRI
            answer_nll(logits, batch["labels"]).backward()
            del logits
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)
        return time.perf_counter() - started
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.train(was_training)
