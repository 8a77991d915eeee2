"""Does a checkpoint hold the model its config names, and a tokenizer that fits it?

`from_pretrained` fills a tensor missing from the weights with random values and drops one it does
not know, with a log line at most; an int64 tensor where a float one belongs is silently cast. A
checkpoint that unlearning starts from must be the model that was trained, so here every tensor the
architecture needs is required, with its shape and a floating dtype where it is a floating one,
before anything loads; the architecture is built on the meta device (no memory, no init), from the
tensor table a safetensors header reader produced (`infra.checkpoint_content`, plain data here).
Tied weights (one tensor under two names) need one of their names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

FLOATING = ("F16", "BF16", "F32", "F64")
SAFETENSORS_DTYPE = {
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
# Round-tripped by the tokenizer: plain text of the kind a deletion request is about.
SAMPLE = "Question: Who wrote The Quiet Harbour in 1987?\nAnswer: Jane Doe, a nurse from Leeds."
SHOWN = 3  # names quoted in a refusal

TensorTable = Mapping[str, tuple[str, Sequence[int]]]  # name -> (safetensors dtype, shape)


class ArchitectureMismatchError(ValueError):
    """Weights, config and tokenizer that do not make the model the config names; the message says which."""


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _ignored(name: str, patterns) -> bool:
    return any(re.search(p, name) for p in patterns or ())


def meta_model(config: PretrainedConfig) -> PreTrainedModel:
    """The architecture `config` names, built on the meta device: shapes and dtypes, no storage."""
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchitectureMismatchError(
            f"config.json names no causal LM transformers can build: {str(exc).splitlines()[0]}"
        ) from None


def _as_loaded(
    model: PreTrainedModel, found: TensorTable, state: Mapping
) -> dict[str, tuple[str, Sequence[int] | None]]:
    """The checkpoint's names as from_pretrained maps them onto `model`: transformers' renamings (legacy
    names such as GPT-NeoX's `embed_out`), the base-model prefix a base checkpoint lacks (GPT-2 on the
    hub). A tensor a converter merges or splits on loading keeps no shape to compare (None)."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    mapping = get_model_conversion_mapping(model)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    loaded: dict[str, tuple[str, Sequence[int] | None]] = {}
    for key, (dtype, shape) in found.items():
        name, converted = rename_source_key(key, renamings, converters, model.base_model_prefix, state)
        if name not in state and key in state:  # as from_pretrained: a name already the model's stays
            name, converted = rename_source_key(key, [], [], model.base_model_prefix, state)
        loaded[name] = (dtype, None if converted else shape)
    return loaded


def check_tensors(model: PreTrainedModel, found: TensorTable) -> None:
    """Raise unless `found` holds every tensor of `model` (one name per tied group), no other, each
    with the model's shape, floating where the model's is; `model` may live on the meta device."""
    state = model.state_dict(keep_vars=True)
    found = _as_loaded(model, found, state)
    groups: dict[int, list[str]] = {}
    for name, tensor in state.items():
        groups.setdefault(id(tensor), []).append(name)
    missing = [
        names[0]
        for names in groups.values()
        if not any(n in found for n in names)
        and not all(_ignored(n, model._keys_to_ignore_on_load_missing) for n in names)
    ]
    if missing:
        raise ArchitectureMismatchError(
            f"{len(missing)} tensor(s) the {type(model).__name__} of config.json needs are not in the weights "
            f"({_listed(missing)}): loading would initialise them at random"
        )
    unexpected = [n for n in found if n not in state and not _ignored(n, model._keys_to_ignore_on_load_unexpected)]
    if unexpected:
        raise ArchitectureMismatchError(
            f"the weights hold {len(unexpected)} tensor(s) the {type(model).__name__} of config.json has no place "
            f"for ({_listed(unexpected)})"
        )
    for name, (dtype, shape) in sorted(found.items()):
        if name not in state or shape is None:
            continue
        expected = state[name]
        if tuple(shape) != tuple(expected.shape):
            raise ArchitectureMismatchError(
                f"tensor {name} has shape {list(shape)} in the weights, "
                f"{list(expected.shape)} in the architecture of config.json"
            )
        if expected.is_floating_point():
            if dtype not in FLOATING:
                raise ArchitectureMismatchError(
                    f"tensor {name} is stored as {dtype}; the model needs a floating dtype ({', '.join(FLOATING)})"
                )
        elif dtype != SAFETENSORS_DTYPE.get(expected.dtype, str(expected.dtype)):
            raise ArchitectureMismatchError(f"tensor {name} is stored as {dtype}, not {expected.dtype}")


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, embedding_rows: int) -> None:
    """Raise unless the tokenizer encodes a sample into ids the model has embeddings for and decodes
    them back to the sample (whitespace aside)."""
    ids = tokenizer.encode(SAMPLE, add_special_tokens=False)
    if not ids:
        raise ArchitectureMismatchError(
            f"the tokenizer ({type(tokenizer).__name__}, {len(tokenizer)} tokens) "
            "encodes text to nothing: no tokenizer files?"
        )
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ArchitectureMismatchError("the tokenizer maps plain text to its unknown token")
    # The ids text and the special tokens grin uses (padding, ends) take must have embeddings; a
    # tokenizer may name more (Qwen2's adds an unknown token that byte-level text never produces).
    used = [
        *ids,
        *(t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None),
    ]
    if max(used) >= embedding_rows:
        raise ArchitectureMismatchError(
            f"the tokenizer gives id {max(used)} but the model embeds only {embedding_rows} tokens"
        )
    if " ".join(tokenizer.decode(ids).split()) != " ".join(SAMPLE.split()):
        raise ArchitectureMismatchError("the tokenizer does not decode what it encodes back to the same text")


def check_model_directory(directory: str | Path, found: TensorTable) -> str:
    """Check the config, the weights' tensor table and the tokenizer of `directory` (which needs
    only its config and tokenizer files); returns the architecture's class name."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ArchitectureMismatchError("no config.json: the architecture of the weights is unknown")
    try:
        config = AutoConfig.from_pretrained(directory)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArchitectureMismatchError(f"config.json: {str(exc).splitlines()[0]}") from None
    model = meta_model(config)
    check_tensors(model, found)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchitectureMismatchError(f"no usable tokenizer: {str(exc).splitlines()[0]}") from None
    check_tokenizer(tokenizer, model.get_input_embeddings().weight.shape[0])
    return type(model).__name__


def check_loading_info(info: Mapping[str, object]) -> None:
    """`from_pretrained(..., output_loading_info=True)`'s report, as errors: nothing missing, unexpected or
    mismatched (the header check before loading should already have said so)."""
    for key, what in (
        ("missing_keys", "missing from the weights (would be random)"),
        ("unexpected_keys", "in the weights but not in the model"),
        ("mismatched_keys", "of another shape than the model's"),
    ):
        names = [n if isinstance(n, str) else n[0] for n in info.get(key) or ()]
        if names:
            raise ArchitectureMismatchError(f"tensor(s) {what}: {_listed(names)}")
