"""GRUN's gated representation intervention (Liu et al. 2025, arXiv 2502.17823), attached with hooks.

At the output h of chosen decoder layers:  h' = h + sigmoid(g(h)) * (W h + b - R h) R^T
with R (r x d, orthonormal rows: torch's `parametrizations.orthogonal`), W, b a `Linear(d, r)` and g
the gate (`Linear(d, 1)` or the authors' MLP d-256-64-1). The base weights are never touched: with
the gate at 0 the model is the base model bit for bit, and removing the hooks gives it back.

Positions: every position, not only the prompt's last token as in the authors' code. A model that
intervenes everywhere is a function of its tokens alone, so every likelihood probe, the membership
attack and generation (with or without a KV cache) see the same model a deployment serves; the
last-token variant would need the prompt boundary in every forward pass. The gate is trained to
fire from the prompt's last token on for forget examples and nowhere on retain examples (grun_train.py).

Sequential requests: one `GrunModule` per request; their interventions add up, each on the same h.
A new module is trained with the earlier ones attached and frozen, so no rescaling is needed at
inference (the authors scale the sum by the module count; they train each module alone).

Artifacts: `save_interventions` writes `interventions.safetensors` + `grun_config.json` into a
directory of their own (with a manifest, checkpoint.py); the base checkpoint stays where it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import parametrizations

from grin_core.models.checkpoint import checkpoint_sha256, save_card, write_manifest
from grin_core.scoring.gri import decoder_layers
from grin_core.unlearning.grun_config import GrunShape

INTERVENTIONS = "interventions.safetensors"
GRUN_CONFIG = "grun_config.json"
ATTRIBUTE = "grun"  # the interventions live on the model under this submodule name
THREAT_MODEL = (
    "GRUN leaves the base weights unchanged: anyone holding the base checkpoint can drop the "
    "intervention and get the forgotten knowledge back, so the deletion holds only while the base "
    "weights are never served or released without it."
)


class GatedIntervention(nn.Module):
    """One layer's gated low-rank intervention; `force_gate` pins the gate (tests, ablations)."""

    def __init__(self, hidden_size: int, rank: int, gate: str) -> None:
        super().__init__()
        self.subspace = parametrizations.orthogonal(nn.Linear(hidden_size, rank, bias=False))
        self.source = nn.Linear(hidden_size, rank)
        self.gate = (
            nn.Linear(hidden_size, 1)
            if gate == "linear"
            else nn.Sequential(nn.Linear(hidden_size, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 1))
        )
        self.force_gate: float | None = None
        self.recorded: list[torch.Tensor] | None = None  # gate logits of each forward while recording

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The increment sigmoid(g(h)) * (W h + b - R h) R^T, in `hidden`'s dtype (computed in fp32)."""
        h = hidden.float()
        logits = self.gate(h)  # (B, T, 1)
        if self.recorded is not None:
            self.recorded.append(logits.squeeze(-1))
        opened = torch.full_like(logits, self.force_gate) if self.force_gate is not None else torch.sigmoid(logits)
        basis = self.subspace.weight  # (r, d), orthonormal rows
        delta = (self.source(h) - h @ basis.T) @ basis
        return (opened * delta).to(hidden.dtype)


class GrunModule(nn.Module):
    """One request's interventions, one per hooked layer (keys are layer indices as strings)."""

    def __init__(self, shape: GrunShape, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.shape = shape
        self.layers = shape.resolved_layers(num_layers)
        self.at = nn.ModuleDict({str(i): GatedIntervention(hidden_size, shape.rank, shape.gate) for i in self.layers})


class LayerHook:
    """The forward hook on one decoder layer: adds every request's increment at that layer.

    An object, not a closure: `copy.deepcopy` of the model (the quantisation and relearning probes)
    then gives the copy hooks that apply the copy's interventions."""

    def __init__(self, stack: Interventions, index: int) -> None:
        self.stack, self.key = stack, str(index)

    def __call__(self, _module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        increments = [request.at[self.key](hidden) for request in self.stack.requests if self.key in request.at]
        if not increments:
            return output
        hidden = hidden + sum(increments[1:], increments[0])  # every request's on the layer's own h
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class Interventions(nn.Module):
    """Every request's module on one model; `hook` puts a LayerHook on each layer they use."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = nn.ModuleList()

    def hook(self, model: nn.Module) -> None:
        unhook(model)
        layers = decoder_layers(model)
        for i in sorted({i for request in self.requests for i in request.layers}):
            layers[i].register_forward_hook(LayerHook(self, i))

    def gates(self) -> list[GatedIntervention]:
        return [m for request in self.requests for m in request.at.values()]


def unhook(model: nn.Module) -> None:
    """Remove every LayerHook from the model's decoder layers."""
    for layer in decoder_layers(model):
        for key in [k for k, hook in layer._forward_hooks.items() if isinstance(hook, LayerHook)]:
            del layer._forward_hooks[key]


def interventions_of(model: nn.Module) -> Interventions | None:
    return getattr(model, ATTRIBUTE, None)


def attach(model: nn.Module, shape: GrunShape, seed: int = 0) -> GrunModule:
    """Add one request's module to `model` (after any earlier ones), hooked and on the model's device."""
    stack = interventions_of(model)
    if stack is None:
        stack = Interventions()
        model.add_module(ATTRIBUTE, stack)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = GrunModule(shape, model.config.hidden_size, model.config.num_hidden_layers)
    stack.requests.append(module.to(next(model.parameters()).device))
    stack.hook(model)
    return module


def detach(model: nn.Module) -> None:
    """Remove every intervention: `model` is its base again (its weights were never changed)."""
    if interventions_of(model) is not None:
        unhook(model)
        delattr(model, ATTRIBUTE)


def intervention_parameters(model: nn.Module) -> int:
    stack = interventions_of(model)
    return sum(p.numel() for p in stack.parameters()) if stack is not None else 0


def save_interventions(model: nn.Module, directory: str | Path, base: dict, extra: dict | None = None) -> None:
    """`interventions.safetensors` (every request's tensors) + `grun_config.json` (their shapes, the
    base checkpoint they apply to and `extra`) into `directory`; the caller writes the manifest."""
    stack = interventions_of(model)
    if stack is None or not len(stack.requests):
        raise ValueError("the model has no interventions to save")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in stack.state_dict().items()}
    save_file(tensors, directory / INTERVENTIONS)
    requests = [{**r.shape.to_dict(), "layers": list(r.layers)} for r in stack.requests]
    config = {"base": dict(base), "requests": requests, **(extra or {})}
    (directory / GRUN_CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True, default=str) + "\n")


def save_grun_checkpoint(
    model: nn.Module, directory: str | Path, base: dict, card_info: dict | None = None, extra: dict | None = None
) -> str:
    """An intervention checkpoint: tensors, config, a model card that states the threat model, and a
    manifest (checkpoint.py); returns its hash. The base checkpoint is named, never copied."""
    save_interventions(model, directory, base, extra)
    save_card(directory, {**(card_info or {}), "base_checkpoint_sha256": base["sha256"], "threat_model": THREAT_MODEL})
    write_manifest(directory)
    return checkpoint_sha256(directory)


def read_grun_config(directory: str | Path) -> dict | None:
    """The directory's grun_config.json, or None when it is not an intervention directory."""
    path = Path(directory) / GRUN_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


def load_interventions(model: nn.Module, directory: str | Path) -> Interventions:
    """Attach the directory's saved requests to `model` (a base model) with their trained tensors."""
    config = read_grun_config(directory)
    if config is None:
        raise ValueError(f"{directory}: no {GRUN_CONFIG}")
    detach(model)
    for shape in config["requests"]:
        attach(model, GrunShape(**{**shape, "layers": tuple(shape["layers"])}))
    stack = interventions_of(model)
    stack.load_state_dict(load_file(Path(directory) / INTERVENTIONS, device=str(next(model.parameters()).device)))
    return stack
