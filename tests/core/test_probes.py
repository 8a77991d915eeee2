"""Robustness probes: keys present only with their data, known answers where a probe reduces to
the plain evaluation, seeded sampling, relearning on copies."""

import pytest
import torch

from grin_core.data.prompts import PROMPT_TEMPLATE
from grin_core.evaluation.evaluate import EvalSuite, evaluate
from grin_core.evaluation.generation import generate_answers, sample_answers
from grin_core.evaluation.probes import (
    PromptFormat,
    format_probe,
    paraphrase_probe,
    relearn_probe,
    run_probes,
    sampling_probe,
    split_halves,
)

FORGET = [
    {"question": "Who is X?", "answer": "X is a writer.", "paraphrased_question": "Tell me who X is."},
    {
        "question": "Where was the author born?",
        "answer": "In Paris, France.",
        "paraphrased_question": "What is the author's birthplace?",
    },
    {
        "question": "What did the author write?",
        "answer": "Three novels about the sea.",
        "paraphrased_question": "Which books did the author write?",
    },
    {"question": "Why?", "answer": "Because the sea called.", "paraphrased_question": "For what reason?"},
]
HOLDOUT = [
    {"question": "Who is Y?", "answer": "Y is a painter."},
    {"question": "When was Y born?", "answer": "In 1950."},
]
PROBE_KEYS = {
    "forget_paraphrase_rougeL",
    "forget_paraphrase_prob",
    "forget_sampled_best_rougeL",
    "forget_sampled_mean_rougeL",
    "forget_format_max_rougeL",
    "forget_format_max_prob",
    *(f"forget_format_{n}_{s}" for n in ("short", "lower", "instruction") for s in ("rougeL", "prob")),
    *(f"{k}_int{b}_{s}" for b in (8, 4) for k, s in (("forget", "rougeL"), ("forget", "prob"), ("mia", "auc"))),
}


def test_run_probes_reports_what_the_data_allows_and_leaves_the_model(tiny_model, tiny_tokenizer):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    m = run_probes(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET, holdout=HOLDOUT), max_new_tokens=4)
    assert set(m) == PROBE_KEYS
    assert all(0 <= v <= 1 for v in m.values())
    assert m["forget_sampled_best_rougeL"] >= m["forget_sampled_mean_rougeL"]
    bare = [{"question": r["question"], "answer": r["answer"]} for r in FORGET]
    m2 = run_probes(
        tiny_model, tiny_tokenizer, EvalSuite(forget=bare), probes=("paraphrase", "quantization"), max_new_tokens=4
    )
    assert set(m2) == {"forget_int8_rougeL", "forget_int8_prob", "forget_int4_rougeL", "forget_int4_prob"}
    assert run_probes(tiny_model, tiny_tokenizer, EvalSuite(holdout=HOLDOUT)) == {}
    with pytest.raises(ValueError):
        run_probes(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), probes=("telepathy",))
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())


def test_probes_reduce_to_the_evaluation_in_the_training_format(tiny_model, tiny_tokenizer):
    plain = evaluate(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), max_new_tokens=4, progress=False)
    same_question = [dict(r, paraphrased_question=r["question"]) for r in FORGET]
    para = paraphrase_probe(tiny_model, tiny_tokenizer, same_question, max_new_tokens=4)
    assert para["forget_paraphrase_rougeL"] == pytest.approx(plain["forget_rougeL"])
    assert para["forget_paraphrase_prob"] == pytest.approx(plain["forget_prob"])
    fmt = format_probe(
        tiny_model, tiny_tokenizer, FORGET, formats={"train": PromptFormat(PROMPT_TEMPLATE)}, max_new_tokens=4
    )
    assert fmt["forget_format_train_rougeL"] == fmt["forget_format_max_rougeL"] == pytest.approx(plain["forget_rougeL"])
    assert fmt["forget_format_train_prob"] == fmt["forget_format_max_prob"] == pytest.approx(plain["forget_prob"])
    assert paraphrase_probe(tiny_model, tiny_tokenizer, [{"question": "q", "answer": "a"}]) == {}


def test_sampling_is_seeded_and_leaves_the_global_rng(tiny_model, tiny_tokenizer):
    questions = [r["question"] for r in FORGET]
    state = torch.random.get_rng_state()
    a = sample_answers(tiny_model, tiny_tokenizer, questions, num_samples=3, seed=1, max_new_tokens=5, batch_size=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a == sample_answers(
        tiny_model, tiny_tokenizer, questions, num_samples=3, seed=1, max_new_tokens=5, batch_size=2
    )
    assert a != sample_answers(
        tiny_model, tiny_tokenizer, questions, num_samples=3, seed=2, max_new_tokens=5, batch_size=2
    )
    assert [len(s) for s in a] == [3] * len(questions)
    # at a temperature near 0 every sample is the greedy answer
    cold = sample_answers(tiny_model, tiny_tokenizer, questions, num_samples=2, temperature=1e-4, max_new_tokens=5)
    greedy = generate_answers(tiny_model, tiny_tokenizer, questions, max_new_tokens=5)
    assert cold == [[g, g] for g in greedy]
    plain = evaluate(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), max_new_tokens=5, progress=False)
    best = sampling_probe(tiny_model, tiny_tokenizer, FORGET, num_samples=2, temperature=1e-4, max_new_tokens=5)
    assert best["forget_sampled_best_rougeL"] == pytest.approx(plain["forget_rougeL"])


def test_split_halves_is_seeded_and_disjoint():
    records = [{"question": str(i), "answer": str(i)} for i in range(7)]
    train, test = split_halves(records, seed=3)
    assert (train, test) == split_halves(records, seed=3) and len(train) == 3 and len(test) == 4
    assert sorted(r["question"] for r in train + test) == [str(i) for i in range(7)]


def test_relearning_raises_the_other_half_and_works_on_a_copy(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    idle = relearn_probe(model, tiny_tokenizer, FORGET, steps=0, max_new_tokens=4)
    assert idle["relearn_forget_prob"] == pytest.approx(idle["relearn_before_forget_prob"])
    twins = FORGET[:1] * 4  # both halves hold the same QA, so relearning one half teaches the other
    m = relearn_probe(model, tiny_tokenizer, twins, steps=15, lr=1e-2, max_new_tokens=4)
    assert m["relearn_forget_prob"] > 2 * m["relearn_before_forget_prob"]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_memorised_model_keeps_its_answers_under_int8_and_sampling(memorised_model):
    suite = EvalSuite(forget=memorised_model.suite.forget[:8], holdout=memorised_model.suite.holdout[:8])
    model, tokenizer = memorised_model.load(), memorised_model.tokenizer
    m = run_probes(model, tokenizer, suite)
    plain = evaluate(model, tokenizer, suite, progress=False)
    assert PROBE_KEYS <= set(m)
    assert m["forget_int8_rougeL"] >= plain["forget_rougeL"] - 0.1  # int8 keeps what the model knows
    assert abs(m["forget_int8_prob"] - plain["forget_prob"]) < 0.05 and m["mia_int8_auc"] >= 0.9
    assert m["forget_sampled_best_rougeL"] >= 0.5


def test_probes_are_registered_by_name_and_an_unknown_one_lists_the_known(tiny_model, tiny_tokenizer):
    from grin_core.evaluation.probes import PROBES, Probe, default_probes
    from grin_core.registry import UnknownNameError
    from policy.gate_policy import PROBE_NAMES

    assert default_probes() == ("paraphrase", "sampling", "formats", "quantization") == PROBE_NAMES
    assert run_probes(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), probes=()) == {}  # a line may run none
    with pytest.raises(UnknownNameError, match="known: paraphrase, sampling, formats, quantization, relearn"):
        run_probes(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), probes=("telepathy",))
    PROBES.register("count", Probe(lambda run: {"forget_count": float(len(run.suite.forget))}, default=False))
    try:
        assert run_probes(tiny_model, tiny_tokenizer, EvalSuite(forget=FORGET), probes=("count",)) == {
            "forget_count": float(len(FORGET))
        }
    finally:
        PROBES.unregister("count")
