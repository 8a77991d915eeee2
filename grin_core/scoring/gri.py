"""GRI scoring: which weights matter for the forget set and not for the retain set.

G_f and G_r are the gradients of the token-mean answer loss over the whole forget / retain set,
accumulated batch by batch (one pass each, no optimizer; with several processes each takes a share
and the sums are added across them: distributed.py); a weight's score is
|G_f| / (|G_r| + eps). Only eligible parameters are scored: by default the weight of every
`nn.Linear` (or GPT-2 style `Conv1D`) inside the decoder layers - attention q/k/v/o and MLP
gate/up/down - never embeddings, norms or lm_head. Layers are found by module type, so any HF
causal LM works.

Precision: the passes run in fp32 even on GPUs. Under bf16 autocast on an H100, one batch in 25 of a
TOFU model gave non-finite gradients in every eligible weight (finite logits and loss; fp32 was
clean), and one such batch poisons every score. A non-finite accumulated gradient is an error.

Memory: each eligible parameter gets one fp32 accumulator; a post-accumulate-grad hook adds the
batch gradient into it and frees `.grad` at once, so at most one transient gradient per tensor
exists besides the accumulators. The forget accumulators are turned into the scores in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from grin_core.data.qa import IGNORE_INDEX, qa_collator, qa_dataset
from grin_core.runtime.distributed import shard, sum_across_ranks_
from grin_core.runtime.steps import StepCallback, Steps
from grin_core.unlearning.objectives import sequence_logprob

LINEAR_TYPES = (nn.Linear, Conv1D)
MODEL_COLUMNS = ["input_ids", "attention_mask", "labels"]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of decoder blocks: the ModuleList of the classes HF marks as
    `_no_split_modules` (LlamaDecoderLayer, GPT2Block, ...), else the longest ModuleList."""
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m)]
    marked = [m for m in lists if type(m[0]).__name__ in no_split]
    candidates = marked or lists
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no ModuleList of decoder layers")
    return max(candidates, key=len)


def eligible_parameters(model: nn.Module, modules: Sequence[str] | None = None) -> dict[str, nn.Parameter]:
    """name -> weight of every linear layer inside the decoder layers, in model order.

    `modules` restricts to linear layers whose own attribute name is listed (e.g. ("q_proj",
    "down_proj")); None keeps all of them. Biases are not eligible.
    """
    layers = decoder_layers(model)
    inside = {id(m) for layer in layers for m in layer.modules()}
    wanted = set(modules) if modules is not None else None
    found: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if id(module) not in inside or not isinstance(module, LINEAR_TYPES):
            continue
        if wanted is not None and name.rsplit(".", 1)[-1] not in wanted:
            continue
        found[f"{name}.weight"] = module.weight
    if not found:
        raise ValueError(f"no eligible linear weights (modules={modules!r}) in {type(model).__name__}")
    return found


def encoded_records(
    records: Iterable[Mapping[str, str]], tokenizer: PreTrainedTokenizerBase, max_length: int = 256
) -> Dataset:
    """`qa_dataset` sorted by length, so a pass over it pads little (order is irrelevant to a sum)."""
    dataset = qa_dataset(records, tokenizer, max_length=max_length)
    return dataset.select(np.argsort(dataset["length"], kind="stable"))


def batches(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> torch.utils.data.DataLoader:
    """Padded batches of the model columns, in dataset order."""
    return torch.utils.data.DataLoader(
        dataset.select_columns(MODEL_COLUMNS),
        batch_size=batch_size,
        shuffle=False,
        collate_fn=qa_collator(tokenizer),
    )


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU that supports it; nothing elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gradient_magnitude(
    model: PreTrainedModel,
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    params: Mapping[str, nn.Parameter],
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "gradients",
) -> dict[str, torch.Tensor]:
    """name -> fp32 |d mean-answer-loss / d param| over all of `dataset` (one pass).

    Each batch contributes -sum(log p(answer tokens)) / (answer tokens in the whole set), so the
    accumulated gradient is exactly that of the set's token-mean loss. Only `params` get gradients;
    every flag and mode is restored afterwards.
    """
    total_tokens = sum(sum(1 for t in row[1:] if t != IGNORE_INDEX) for row in dataset["labels"])
    if total_tokens == 0:
        raise ValueError("dataset has no answer tokens")
    accumulators = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    flags = {p: p.requires_grad for p in model.parameters()}
    handles = []

    def accumulate_into(acc: torch.Tensor):
        def hook(p: torch.Tensor) -> None:
            acc.add_(p.grad)
            p.grad = None

        return hook

    was_training = model.training
    try:
        model.eval()  # no dropout: the score is a property of the weights, not of a random mask
        for p in model.parameters():
            p.requires_grad_(False)
            p.grad = None
        for name, p in params.items():
            p.requires_grad_(True)
            handles.append(p.register_post_accumulate_grad_hook(accumulate_into(accumulators[name])))
        for batch in tqdm(batches(shard(dataset), tokenizer, batch_size), desc=desc, disable=not progress, leave=False):
            batch = {k: v.to(model.device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = -sequence_logprob(logits, batch["labels"]).sum() / total_tokens
            loss.backward()
            del logits, loss
    finally:
        for handle in handles:
            handle.remove()
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.train(was_training)
    sum_across_ranks_(accumulators.values())  # the whole set's gradient on every rank (distributed.py)
    for name, acc in accumulators.items():
        if not torch.isfinite(acc).all():
            raise FloatingPointError(f"{desc}: the gradient of {name} is not finite (NaN or inf)")
        acc.abs_()
    return accumulators


def gri_ratio(
    g_forget: Mapping[str, torch.Tensor], g_retain: Mapping[str, torch.Tensor], eps: float = 1e-8
) -> dict[str, torch.Tensor]:
    """name -> |G_f| / (|G_r| + eps).

    In place: the results are `g_forget`'s tensors and `g_retain`'s become |G_r| + eps, so a 7B
    model's scoring holds two fp32 copies of the eligible weights, not three. Pass clones to keep them.
    """
    if g_forget.keys() != g_retain.keys():
        raise ValueError("forget and retain gradients cover different parameters")
    return {n: g_forget[n].abs_().div_(g_retain[n].abs_().add_(eps)) for n in g_forget}


def gri_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_records: Sequence[Mapping[str, str]],
    retain_records: Sequence[Mapping[str, str]],
    *,
    modules: Sequence[str] | None = None,
    eps: float = 1e-8,
    batch_size: int = 16,
    max_length: int = 256,
    progress: bool = False,
    on_step: StepCallback | None = None,
) -> dict[str, torch.Tensor]:
    """name -> fp32 GRI score of every eligible weight (see module docstring); `on_step` hears
    each of the two gradient passes begin."""
    params = eligible_parameters(model, modules)
    forget = encoded_records(forget_records, tokenizer, max_length)
    retain = encoded_records(retain_records, tokenizer, max_length)
    steps = Steps(2, on_step)
    steps.begin(f"gradients of {len(forget)} forget records")
    g_forget = gradient_magnitude(model, forget, tokenizer, params, batch_size, progress, "GRI forget")
    steps.begin(f"gradients of {len(retain)} retain records")
    g_retain = gradient_magnitude(model, retain, tokenizer, params, batch_size, progress, "GRI retain")
    return gri_ratio(g_forget, g_retain, eps)
