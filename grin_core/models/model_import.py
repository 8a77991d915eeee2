"""A user's Hugging Face causal LM as a grin model line: loaded with transformers, checked, or refused.

Refused, each with a one-line reason: a directory holding only pickle weights (`.bin`, `.pt`,
`.pth`, `.pkl`: loading them runs code), a model with fused expert tensors (MoE: GRI scores and masks
2-D linear weights, one per tensor), a model without linear layers inside its decoder stack, and
weights that `from_pretrained` reports as missing, unexpected or mismatched (it would initialise them
at random or drop them; `grin_core.models.architecture_check` says so from the headers before loading).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from grin_core.models.architecture_check import check_loading_info
from grin_core.scoring.gri import decoder_layers, eligible_parameters

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl")
EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


class UnsupportedModelError(ValueError):
    """The directory is not a model grin can unlearn; the message says why and what to do."""


def load_importable(directory: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    directory = Path(directory)
    weights = [p.name for p in directory.iterdir() if p.is_file()]
    if not any(name.endswith(".safetensors") for name in weights):
        pickles = [name for name in weights if name.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise UnsupportedModelError(
                f"{directory} holds only pickle weights ({', '.join(sorted(pickles)[:3])}); convert them in a trusted "
                "environment: AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(OUT) writes safetensors"
            )
        raise UnsupportedModelError(f"{directory} holds no model weights (*.safetensors)")
    model, loading = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True, output_loading_info=True)
    check_loading_info(loading)  # no tensor initialised at random, none dropped
    experts = {f: getattr(model.config, f) for f in EXPERT_FIELDS if (getattr(model.config, f, None) or 0) > 1}
    fused = [n for n, p in model.named_parameters() if p.dim() > 2 and _inside(model, n)]
    if experts or fused:
        raise UnsupportedModelError(
            f"{type(model).__name__} is a mixture of experts ({experts or fused[:2]}): GRI scores and masks 2-D "
            "linear weights, and fused expert tensors would be scored as one; not supported"
        )
    try:
        eligible_parameters(model)
    except ValueError as exc:
        raise UnsupportedModelError(f"{type(model).__name__}: {exc}") from None
    return model.eval(), AutoTokenizer.from_pretrained(directory)


def _inside(model: nn.Module, name: str) -> bool:
    layers = {id(m) for m in decoder_layers(model).modules()}
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return id(module) in layers
