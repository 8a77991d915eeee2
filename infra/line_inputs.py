"""The data a model line is imported or registered with, read as intake reads a ticket's objects.

A training manifest (or retain records), a holdout set and an eval suite are read with the service's
credentials, so they come only from the intake roots (`infra.intake_roots`: resolved first, then
compared), are sized before they are read (`GRIN_INTAKE_MAX_OBJECT_BYTES`, `..._RECORDS`) and
their content is checked (`infra.intake_content`) before anything is written: a credentials file
is neither read from outside the roots nor copied into the store as an "eval suite". The checked
bytes' sha256 comes back, so what the line records is what was checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.errors import InvalidRequestError
from infra.intake_content import ObjectContentError, check_qa_object, check_qa_rows, load_json
from infra.intake_roots import locate_allowed
from infra.settings import Settings

# The parts of an eval suite the pipeline reads (tasks/evaluate.py, tasks/calibrate.py); the
# multiple-choice ones need their wrong answers.
SUITE_PARTS = ("retain", "real_authors", "world_facts", "holdout", "calibration")
MULTIPLE_CHOICE = ("real_authors", "world_facts")


@dataclass(frozen=True)
class CheckedObject:
    """An object read from under an intake root and checked: its resolved URI, bytes and their sha256."""

    uri: str
    data: bytes
    sha256: str


def _read(uri: str, role: str, settings: Settings, check: Callable[[bytes], Any]) -> CheckedObject:
    try:
        located = locate_allowed(uri, settings=settings)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{role}: {exc}") from None
    limit = settings.intake_max_object_bytes
    size = located.store.head(located.key).size
    data = located.store.get_bytes(located.key) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise ObjectContentError(f"{role}: {max(size, len(data))} bytes, more than the {limit} allowed")
    check(data)
    return CheckedObject(located.uri, data, hashlib.sha256(data).hexdigest())


def read_qa_records(uri: str, *, role: str, settings: Settings) -> CheckedObject:
    """QA records (a JSON array or JSON Lines of question/answer objects) from under an intake root."""
    return _read(
        uri, role, settings, lambda data: check_qa_object(data, source=role, max_records=settings.intake_max_records)
    )


def check_suite_parts(suite: Any, *, source: str, max_records: int) -> None:
    """An eval suite: a JSON object of known parts, each a list of QA records."""
    if not isinstance(suite, Mapping):
        raise ObjectContentError(f"{source}: not a JSON object of QA sets")
    for part, rows in suite.items():
        if part not in SUITE_PARTS:
            raise ObjectContentError(f"{source}: unknown part {part!r} (parts: {', '.join(SUITE_PARTS)})")
        check_qa_rows(rows, source=f"{source} part {part}", max_records=max_records)
        if part in MULTIPLE_CHOICE:
            for number, row in enumerate(rows, start=1):
                wrong = row.get("perturbed_answer")
                if not isinstance(wrong, list) or not wrong or not all(isinstance(w, str) for w in wrong):
                    raise ObjectContentError(
                        f"{source} part {part}: record {number} has no perturbed_answer list (the wrong choices)"
                    )


def read_eval_suite(uri: str, *, role: str, settings: Settings) -> tuple[CheckedObject, dict[str, list[dict]]]:
    """An eval suite from under an intake root, checked part by part, and its parsed content."""
    parsed: dict[str, Any] = {}

    def check(data: bytes) -> None:
        parsed["suite"] = load_json(data, source=role)
        check_suite_parts(parsed["suite"], source=role, max_records=settings.intake_max_records)

    checked = _read(uri, role, settings, check)
    return checked, parsed["suite"]
