"""Batched greedy generation: left padding and batching do not change the answers."""

from grin_core.evaluation.generation import generate_answers

QUESTIONS = ["Who is this author?", "What genre does the author write in, and where was the author born?", "Why?"]


def test_batching_does_not_change_answers(tiny_model, tiny_tokenizer):
    one_by_one = [generate_answers(tiny_model, tiny_tokenizer, [q], max_new_tokens=6)[0] for q in QUESTIONS]
    batched = generate_answers(tiny_model, tiny_tokenizer, QUESTIONS, max_new_tokens=6, batch_size=2)
    assert batched == one_by_one and all(isinstance(a, str) for a in batched)
    assert not any(a.startswith("Question:") for a in batched)  # the prompt is stripped
