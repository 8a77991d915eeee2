"""What a ticket's objects must hold, checked at filing so a bad object is refused there.

The format is the one the pipeline reads (`grin_core.data.records`): a QA object is a JSON array of
records or JSON Lines, each record with non-empty "question" and "answer" strings ("prompt" /
"response" are read too); a keywords object is a JSON array of non-empty strings. The checks
here also refuse what would only break later: non-finite numbers, unpaired surrogate escapes
(not encodable as UTF-8), nesting deep enough to exhaust the parser.

Messages name a line or a record number and never any of the object's text: it is personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.errors import InvalidRequestError

_ALIASES = {"prompt": "question", "response": "answer"}


class ObjectContentError(InvalidRequestError):
    """An object whose bytes are not what its role in the ticket needs."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _text(data: bytes, source: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ObjectContentError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    if text.startswith("\ufeff"):
        raise ObjectContentError(f"{source}: starts with a byte-order mark; save it as plain UTF-8")
    if not text.strip():
        raise ObjectContentError(f"{source}: empty")
    return text


def _parse(text: str, source: str, where: str) -> Any:
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise ObjectContentError(f"{source}: {where}: not JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:  # parse_constant: NaN, Infinity, -Infinity
        raise ObjectContentError(f"{source}: {where}: {exc}") from None
    except RecursionError:
        raise ObjectContentError(f"{source}: {where}: nested too deeply") from None


def _encodable(value: Any, source: str, where: str) -> None:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ObjectContentError(f"{source}: {where}: holds an unpaired surrogate escape") from None


def _check_record(row: Any, source: str, where: str) -> None:
    if not isinstance(row, Mapping):
        raise ObjectContentError(f"{source}: {where} is not a JSON object")
    record = {_ALIASES.get(k, k): v for k, v in row.items()}
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ObjectContentError(f"{source}: {where} has no {key!r} string")
    _encodable(row, source, where)


def check_qa_rows(rows: Any, *, source: str, max_records: int) -> int:
    """The number of QA records in `rows`, already parsed from JSON (an array, or an eval suite's part)."""
    if not isinstance(rows, list):
        raise ObjectContentError(f"{source}: not a JSON array")
    if len(rows) > max_records:
        raise ObjectContentError(f"{source}: {len(rows)} records, more than the {max_records} allowed")
    for number, row in enumerate(rows, start=1):
        _check_record(row, source, f"record {number}")
    return len(rows)


def load_json(data: bytes, *, source: str) -> Any:
    """UTF-8 JSON with the refusals above (byte-order mark, non-finite numbers, deep nesting)."""
    return _parse(_text(data, source), source, "the object")


def check_qa_object(data: bytes, *, source: str, max_records: int) -> int:
    """The number of QA records in `data`; ObjectContentError naming the first bad line or record."""
    text = _text(data, source)
    count = 0
    if text.lstrip().startswith("["):
        count = check_qa_rows(_parse(text, source, "the array"), source=source, max_records=max_records)
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            count += 1
            if count > max_records:
                raise ObjectContentError(f"{source}: more than the {max_records} records allowed")
            _check_record(_parse(line, source, f"line {number}"), source, f"line {number}")
    if count == 0:
        raise ObjectContentError(f"{source}: holds no records")
    return count


def check_keywords_object(data: bytes, *, source: str, max_records: int) -> int:
    """The number of key phrases in `data`: a JSON array of non-empty strings."""
    phrases = _parse(_text(data, source), source, "the array")
    if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
        raise ObjectContentError(f"{source}: not a JSON array of non-empty strings")
    if len(phrases) > max_records:
        raise ObjectContentError(f"{source}: {len(phrases)} phrases, more than the {max_records} allowed")
    _encodable(phrases, source, "the array")
    return len(phrases)
