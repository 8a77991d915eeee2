"""QA records as they arrive in objects, and the retain sample that must not overlap a forget set.

A QA object is a JSON array of records or JSON Lines; a record has "question" and "answer" strings
(TOFU's forget files say "prompt"/"response": both spellings are read). Errors name the record's
position, never its text: forget sets are personal data.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence

Record = dict[str, object]
_ALIASES = {"prompt": "question", "response": "answer"}
_SPACE = re.compile(r"\s+")


class RecordFormatError(ValueError):
    """An object that is not a list of QA records."""


def parse_qa_records(data: bytes, source: str = "object") -> list[Record]:
    """Records of a JSON array or JSON Lines object, with question/answer normalised."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordFormatError(f"{source}: not UTF-8 text") from None
    stripped = text.lstrip()
    if not stripped:
        raise RecordFormatError(f"{source}: empty")
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise RecordFormatError(f"{source}: not JSON or JSON Lines (line {exc.lineno})") from None
    records = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RecordFormatError(f"{source}: record {i} is not an object")
        record = {_ALIASES.get(k, k): v for k, v in row.items()}
        for key in ("question", "answer"):
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise RecordFormatError(f"{source}: record {i} has no {key!r} string")
        records.append(record)
    if not records:
        raise RecordFormatError(f"{source}: holds no records")
    return records


def parse_keywords(data: bytes, source: str = "keywords") -> list[str]:
    """A JSON array of key phrases (names, places, titles) whose recall the gate watches."""
    try:
        phrases = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RecordFormatError(f"{source}: not a JSON array of strings") from None
    if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
        raise RecordFormatError(f"{source}: not a JSON array of non-empty strings")
    return phrases


def to_jsonl(records: Iterable[Mapping[str, object]]) -> bytes:
    """Canonical JSON Lines (sorted keys), so equal record lists hash equally."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()


def _normalised(text: object) -> str:
    return _SPACE.sub(" ", str(text)).strip().casefold()


def text_key(text: object) -> str:
    """Identity of a question or an answer up to case and whitespace."""
    return hashlib.sha256(_normalised(text).encode()).hexdigest()


def overlaps(record: Mapping[str, object], forget_keys: set[str], keywords: Sequence[str]) -> bool:
    """Whether `record` repeats a forget question or answer, or mentions a forget key phrase."""
    if text_key(record["question"]) in forget_keys or text_key(record["answer"]) in forget_keys:
        return True
    text = _normalised(f"{record['question']} {record['answer']}")
    return any(_normalised(k) in text for k in keywords)


def forget_keys(forget: Iterable[Mapping[str, object]]) -> set[str]:
    """`text_key` of every forget question and answer: what `overlaps` matches against."""
    return {text_key(r[k]) for r in forget for k in ("question", "answer")}


def without_forget(
    manifest: Iterable[Mapping[str, object]],
    forget: Iterable[Mapping[str, object]],
    keywords: Sequence[str] = (),
) -> list[Record]:
    """The manifest records that do not overlap the forget set (`overlaps`), in their order.

    With no keywords this is the lineage rule (a record goes when it repeats a forget question or
    answer); the retain sample adds the forget key phrases on top.
    """
    keys = forget_keys(forget)
    return [dict(r) for r in manifest if not overlaps(r, keys, keywords)]


def sample_retain(
    manifest: Sequence[Mapping[str, object]],
    forget: Sequence[Mapping[str, object]],
    n: int,
    seed: int,
    keywords: Sequence[str] = (),
) -> list[Record]:
    """Up to `n` manifest records, seeded, none of which overlaps the forget set (`overlaps`)."""
    eligible = without_forget(manifest, forget, keywords)
    if len(eligible) <= n:
        return eligible
    return random.Random(seed).sample(eligible, n)
