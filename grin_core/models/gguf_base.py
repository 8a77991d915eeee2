"""A pretrained base as a grin checkpoint on local disk: what a fine-tuning recipe starts from.

A GGUF file is dequantised once and kept in the model cache under its sha256 (and the line's prompt
template), so every model fine-tuned from it keys on the same base checkpoint and a second run skips the
dequantisation. A directory that already is a grin checkpoint (it has a manifest) is used as it is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from grin_core.models.cache import cached_dir, content_key
from grin_core.models.checkpoint import file_sha256, save_checkpoint, verify_checkpoint

BASE_VERSION = 1  # bump when the way a base checkpoint is written changes


def base_checkpoint(source: str | Path, cache_dir: str | Path, prompt_template: str | None = None) -> Path:
    """The checkpoint dir of `source`: a `.gguf` file dequantised into `cache_dir` (cached by its sha256),
    or a grin checkpoint dir (verified, returned as is). `prompt_template` becomes the line's for a GGUF."""
    source = Path(source)
    if source.is_dir():
        verify_checkpoint(source)
        return source
    if not source.is_file():
        raise FileNotFoundError(f"no base model at {source} (for SmolLM2: make smollm2)")
    key = content_key(BASE_VERSION, "gguf-base", file_sha256(source), prompt_template)
    path, _ = cached_dir(cache_dir, key, lambda directory: _write_base(source, directory, prompt_template))
    return path


def _write_base(source: Path, directory: Path, prompt_template: str | None) -> None:
    """Dequantise `source` and save it, with its template and where it came from, as a grin checkpoint."""
    from grin_core.data.prompts import line_template, set_line_template
    from grin_core.models.gguf_import import dequantise
    from grin_core.models.model_import import load_importable

    with tempfile.TemporaryDirectory(prefix="grin-base-") as tmp:
        origin = dequantise(source, Path(tmp)).as_dict()
        model, tokenizer = load_importable(tmp)
    if prompt_template:
        set_line_template(tokenizer, prompt_template)
    save_checkpoint(
        model,
        tokenizer,
        directory,
        card_info={"method": "imported", "source": origin},
        grin_config={
            "imported": True,
            "prompt_template": line_template(tokenizer),
            "architecture": type(model).__name__,
            "source": origin,
        },
    )
