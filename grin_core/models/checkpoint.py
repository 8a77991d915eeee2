"""Checkpoint directories: safetensors weights, tokenizer, the config that built them, a model card,
and a sha256 manifest of every file that loading verifies.

Layout (nanochat habit: the config that built a model is saved beside it):
    model.safetensors, config.json, generation_config.json   save_pretrained (safetensors only)
    tokenizer.json, tokenizer_config.json                    the tokenizer
    grin_config.json                                         TinyLlamaConfig, training config, ...
    README.md                                                model card with the unlearning lineage
    card.json                                                the card's fields, machine-readable
    manifest.json                                            {"files": {name: sha256}}, sorted
The manifest's own sha256 is the checkpoint's hash in the model registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

MANIFEST = "manifest.json"
GRIN_CONFIG = "grin_config.json"
CARD = "README.md"
CARD_DATA = "card.json"  # what the service reads of a card (the run and tickets of a candidate), never the markdown
CARD_FIELDS = (
    ("method", "method"),
    ("p", "p (% of weights selected)"),
    ("sigma2", "sigma²"),
    ("epochs", "epochs"),
    ("parent", "parent checkpoint sha256"),
)


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's files do not match its manifest."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST
    )


def write_manifest(directory: str | Path) -> Path:
    """Hash every file of `directory` (but the manifest) into a sorted JSON manifest."""
    directory = Path(directory)
    manifest = {"files": {name: file_sha256(directory / name) for name in _files(directory)}}
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def verify_checkpoint(directory: str | Path) -> None:
    """Raise `CheckpointIntegrityError` naming the first file that is missing, extra or altered."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise CheckpointIntegrityError(f"{directory}: no {MANIFEST}; refusing an unverifiable checkpoint")
    recorded: dict[str, str] = json.loads(path.read_text())["files"]
    present = set(_files(directory))
    for name in sorted(set(recorded) | present):
        if name not in present:
            raise CheckpointIntegrityError(f"{directory}: {name} is in the manifest but missing")
        if name not in recorded:
            raise CheckpointIntegrityError(f"{directory}: {name} is not in the manifest")
        if file_sha256(directory / name) != recorded[name]:
            raise CheckpointIntegrityError(f"{directory}: sha256 of {name} does not match the manifest")


def checkpoint_sha256(directory: str | Path) -> str:
    """One hash for the whole checkpoint: the sha256 of its manifest (which hashes every file)."""
    return file_sha256(Path(directory) / MANIFEST)


def model_card(card_info: Mapping[str, object] | None) -> ModelCard:
    """A model card; with `card_info` it records the unlearning lineage and the metrics."""
    info = dict(card_info or {})
    data = ModelCardData(library_name="transformers", tags=["grin", "unlearning", "safetensors"])
    lines = ["# GRIN checkpoint", ""]
    lineage = [(label, info[key]) for key, label in CARD_FIELDS if info.get(key) is not None]
    if lineage:
        lines += ["## Unlearning lineage", "", "| field | value |", "|---|---|"]
        lines += [f"| {label} | {value} |" for label, value in lineage]
        lines.append("")
    metrics = info.get("metrics") or {}
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [
            f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(metrics.items())
        ]
        lines.append("")
    rest = {k: v for k, v in info.items() if k not in dict(CARD_FIELDS) and k != "metrics"}
    if rest:
        lines += ["## Details", "", "```json", json.dumps(rest, indent=1, sort_keys=True, default=str), "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def save_card(directory: str | Path, card_info: Mapping[str, object] | None) -> None:
    """The model card (`README.md`) and its fields as JSON (`card.json`), which programs read."""
    directory = Path(directory)
    model_card(card_info).save(directory / CARD)
    (directory / CARD_DATA).write_text(json.dumps(dict(card_info or {}), indent=1, sort_keys=True, default=str) + "\n")


def save_checkpoint(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    directory: str | Path,
    card_info: Mapping[str, object] | None = None,
    grin_config: Mapping[str, object] | None = None,
) -> str:
    """Write weights (safetensors), tokenizer, config, card and manifest; return the checkpoint hash."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    config_text = json.dumps(dict(grin_config or {}), indent=1, sort_keys=True, default=str)
    (directory / GRIN_CONFIG).write_text(config_text + "\n")
    save_card(directory, card_info)
    for stray in directory.glob("*.bin"):  # never a pickle beside the safetensors
        stray.unlink()
    write_manifest(directory)
    return checkpoint_sha256(directory)


def load_grin_config(directory: str | Path) -> dict:
    path = Path(directory) / GRIN_CONFIG
    return json.loads(path.read_text()) if path.exists() else {}


def load_checkpoint(
    directory: str | Path, device: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Verify the manifest, then load model (safetensors only) and tokenizer (whatever class the
    directory's tokenizer_config names, through AutoTokenizer); eval mode."""
    verify_checkpoint(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer
