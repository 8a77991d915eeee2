"""Inputs of the ML stages, fetched through infra and verified against the hashes they travel with."""

from __future__ import annotations

import json
from functools import lru_cache

from accelerate import PartialState
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.utils import logging as transformers_logging

from grin_core.data.records import parse_qa_records
from grin_core.models.checkpoint import load_checkpoint
from grin_core.unlearning.grun import load_interventions, read_grun_config
from infra.settings import get_settings
from infra.storage import locate
from tasks.checkpoint_store import fetch_checkpoint
from tasks.contracts import CheckpointRef, ObjectRef


def read_bytes(ref: ObjectRef) -> bytes:
    store, key = locate(ref.uri, settings=get_settings())
    return store.get_bytes(key, expected_sha256=ref.sha256)


def read_records(ref: ObjectRef) -> list[dict]:
    return parse_qa_records(read_bytes(ref), source=ref.uri)


def read_json(ref: ObjectRef) -> dict:
    return json.loads(read_bytes(ref))


@lru_cache(maxsize=1)
def device() -> str:
    """The accelerator this process drives (accelerate decides: CUDA, MPS or CPU)."""
    return str(PartialState().device)


def load_model(ref: CheckpointRef) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """A fresh, verified copy of the checkpoint on this process's device (stages may edit it); a GRUN
    checkpoint comes as its base model with the interventions attached, as it is served."""
    transformers_logging.disable_progress_bar()  # a bar per load would drown the stage logs
    directory = fetch_checkpoint(ref)
    base = base_checkpoint(ref)
    model, tokenizer = load_checkpoint(fetch_checkpoint(base) if base else directory, device=device())
    if base is not None:
        load_interventions(model, directory)
    return model.eval(), tokenizer


def base_checkpoint(ref: CheckpointRef) -> CheckpointRef | None:
    """The full-weight checkpoint a GRUN checkpoint applies to; None for one that holds its weights."""
    config = read_grun_config(fetch_checkpoint(ref))
    return CheckpointRef(**config["base"]) if config is not None else None
