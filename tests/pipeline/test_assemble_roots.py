"""The pipeline reads a ticket's objects through the intake roots too, not only intake: a ticket filed
before the roots narrowed, or a symlink swapped after filing, is refused as bad input (rejected)."""

from __future__ import annotations

import pytest

from infra.errors import InvalidRequestError
from infra.storage import open_store
from tasks.assemble import _ticket_inputs

GOOD = b'[{"question": "q", "answer": "a"}]'


def test_objects_outside_the_roots_are_not_read_by_the_pipeline(make_settings, sqlite_url, use_settings, tmp_path):
    settings = make_settings(database_url=sqlite_url)
    use_settings(settings)
    inside = open_store(settings).put_bytes("inbox/jane.json", GOOD).uri
    assert _ticket_inputs([inside], None, None)[0] == [{"question": "q", "answer": "a"}]

    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(GOOD)
    with pytest.raises(InvalidRequestError, match="not under an allowed intake root"):
        _ticket_inputs([outside.as_uri()], None, None)

    link = open_store(settings).root / "inbox" / "swapped.json"
    link.symlink_to(outside)  # placed after filing
    with pytest.raises(InvalidRequestError, match="not under an allowed intake root"):
        _ticket_inputs([inside], None, [link.as_uri()])
