"""A training recipe from text: `key=value` pairs checked against the recipe's dataclass.

A recipe (`TrainConfig`: from scratch, `FinetuneConfig`: from a base) is a frozen dataclass whose fields
are its cache key. A caller that holds text (the CLI's `--recipe lr=1e-4 --recipe stop_loss=none`) gets
the recipe, or a one-line ValueError naming the unknown key (with the known ones), the value of the
wrong type, or what the recipe's own check refuses, before anything trains.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar, get_args, get_type_hints

R = TypeVar("R")
NONE_WORDS = ("none", "null")


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs as a dict, each value read as JSON (numbers, true/false; `none` is None) or kept as text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"recipe entry {pair!r} is not key=value")
        if key in values:
            raise ValueError(f"recipe key {key!r} is given twice")
        try:
            values[key] = None if text.strip().lower() in NONE_WORDS else json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def checked_recipe(recipe_type: type[R], values: Mapping[str, Any]) -> R:
    """`recipe_type` with `values` over its defaults, each value of its field's type (an int is taken
    for a float); ValueError, in one line, for anything else."""
    known = [f.name for f in fields(recipe_type)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown recipe key {unknown[0]!r}; known keys: {', '.join(known)}")
    hints = get_type_hints(recipe_type)
    typed = {key: _typed(key, value, hints[key]) for key, value in values.items()}
    try:
        return recipe_type(**typed)
    except ValueError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def _typed(key: str, value: Any, hint: Any) -> Any:
    allowed = get_args(hint) or (hint,)
    if value is None:
        if type(None) in allowed:
            return None
    elif isinstance(value, bool):
        if bool in allowed:
            return value
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, int | float) and float in allowed:
        return float(value)
    elif isinstance(value, str) and str in allowed:
        return value
    names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
    raise ValueError(f"recipe key {key!r}: {value!r} is not {names}")
