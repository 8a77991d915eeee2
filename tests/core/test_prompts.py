"""A model line's prompt template travels with its tokenizer, and every prompt is built from it."""

import pytest

from grin_core.data.prompts import (
    CHAT,
    PROMPT_TEMPLATE,
    check_template,
    line_template,
    prompt_ids,
    set_line_template,
)
from grin_core.data.qa import encode_qa
from grin_core.evaluation.generation import generate_answers
from grin_core.metrics.likelihood import answer_logprobs
from grin_core.models.checkpoint import load_checkpoint, save_checkpoint

CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_the_line_template_is_saved_with_the_checkpoint_and_used_everywhere(
    tiny_model_factory, tiny_tokenizer, tmp_path
):
    model, tokenizer = tiny_model_factory(0), tiny_tokenizer
    assert line_template(tokenizer) == PROMPT_TEMPLATE
    default = prompt_ids("Who?", tokenizer)
    save_checkpoint(model, tokenizer, tmp_path / "line")
    _, reloaded = load_checkpoint(tmp_path / "line")
    set_line_template(reloaded, "Q: {question}\nA:")
    save_checkpoint(model, reloaded, tmp_path / "other")
    _, other = load_checkpoint(tmp_path / "other")
    assert line_template(other) == "Q: {question}\nA:"
    ids = prompt_ids("Who?", other)
    assert ids != default and ids == prompt_ids("Who?", tokenizer, "Q: {question}\nA:")
    encoded = encode_qa("Who?", "Me.", other)
    assert encoded["input_ids"][: len(ids)] == ids and encoded["labels"][: len(ids)] == [-100] * len(ids)
    # generation and likelihood read the same template: explicit and implicit agree
    assert generate_answers(model, other, ["Who?"], max_new_tokens=4) == generate_answers(
        model, tokenizer, ["Who?"], max_new_tokens=4, template="Q: {question}\nA:"
    )
    implicit = answer_logprobs(model, other, ["Who?"], ["Me."])[0]
    explicit = answer_logprobs(model, tokenizer, ["Who?"], ["Me."], template="Q: {question}\nA:")[0]
    assert implicit.tolist() == explicit.tolist()


def test_chat_renders_the_tokenizers_own_template(tiny_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        check_template(CHAT, tiny_tokenizer)
    tiny_tokenizer.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    chatty = AutoTokenizer.from_pretrained(tmp_path)
    chatty.chat_template = CHAT_TEMPLATE
    set_line_template(chatty, CHAT)
    text = chatty.decode(prompt_ids("Who wrote it?", chatty))
    assert text.startswith("<|user|>Who wrote it?") and text.endswith("<|assistant|>")


@pytest.mark.parametrize("bad", ["Question: {q}", "no slot", "{question} and {question}", "{question} {0}"])
def test_a_template_without_exactly_one_question_slot_is_refused(bad):
    with pytest.raises(ValueError):
        check_template(bad)
