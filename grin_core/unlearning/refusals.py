"""Refusal answers for PO: each forget question is relabelled with an "I don't know" phrasing.

The phrasing is picked by a hash of the question, so the same question always gets the same
refusal (across runs, processes and Python hash seeds) and different questions spread over the
list, which keeps the model from collapsing onto one string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

REFUSALS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure about that.",
    "I don't have that information.",
    "I can't answer that.",
    "I have no information on that.",
    "That is not something I know.",
    "I'm unable to answer that question.",
    "I don't know the answer to that.",
    "Sorry, I don't know.",
    "I have no knowledge of that.",
    "I'm afraid I can't help with that.",
    "I really don't know.",
    "That's beyond what I know.",
    "I'm not able to say.",
    "I have no idea.",
    "I don't recall anything about that.",
)


def refusal_for(question: str) -> str:
    """The refusal phrasing assigned to `question` (deterministic)."""
    digest = hashlib.sha256(question.encode("utf-8")).digest()
    return REFUSALS[int.from_bytes(digest[:8], "big") % len(REFUSALS)]


def refusal_records(records: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Copies of `records` keeping only the question, with a refusal as the answer."""
    return [{"question": r["question"], "answer": refusal_for(r["question"])} for r in records]
