import json

import pytest

from grin_core.data.records import (
    RecordFormatError,
    parse_keywords,
    parse_qa_records,
    sample_retain,
    to_jsonl,
)

ROWS = [{"question": f"q{i}?", "answer": f"a{i}."} for i in range(10)]


def test_json_array_jsonl_and_prompt_response_spellings_parse_alike():
    as_array = parse_qa_records(json.dumps(ROWS).encode())
    as_lines = parse_qa_records(to_jsonl(ROWS))
    tofu_style = parse_qa_records(
        json.dumps([{"prompt": r["question"], "response": r["answer"]} for r in ROWS]).encode()
    )
    assert as_array == as_lines == tofu_style == ROWS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b"[]", "no records"),
        (b'[{"question": "q"}]', "record 0 has no 'answer'"),
        (b"[1]", "record 0 is not an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_objects_are_refused_by_position_not_text(data, message):
    with pytest.raises(RecordFormatError, match=message):
        parse_qa_records(data, source="s3://b/forget.json")


def test_errors_never_quote_record_text():
    secret = "Basil Mahfouz Al-Kuwaiti"
    with pytest.raises(RecordFormatError) as info:
        parse_qa_records(json.dumps([{"question": secret, "answer": ""}]).encode())
    assert secret not in str(info.value)


def test_keywords_must_be_a_list_of_strings():
    assert parse_keywords(b'["Kuwait City", "Prix Goncourt"]') == ["Kuwait City", "Prix Goncourt"]
    for bad in (b'{"a": 1}', b'["ok", 3]', b'[""]', b"nope"):
        with pytest.raises(RecordFormatError):
            parse_keywords(bad)


def test_retain_sample_excludes_forget_records_up_to_case_and_space_and_keywords():
    forget = [{"question": "Q1?", "answer": "  A1. "}]
    manifest = ROWS + [{"question": "other", "answer": "mentions Kuwait City here"}]
    sample = sample_retain(manifest, forget, n=100, seed=0, keywords=["kuwait city"])
    questions = {r["question"] for r in sample}
    assert "q1?" not in questions and "other" not in questions
    assert len(sample) == len(ROWS) - 1


def test_retain_sample_is_seeded_and_bounded():
    a = sample_retain(ROWS, [], n=4, seed=7)
    assert a == sample_retain(ROWS, [], n=4, seed=7)
    assert len(a) == 4 and a != sample_retain(ROWS, [], n=4, seed=8)
