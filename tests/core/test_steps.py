"""Step progress: evaluation, probes and GRI scoring announce every step, counted to a total
known up front, in words that never carry a record's text."""

from grin_core.evaluation.evaluate import EvalSuite, evaluate
from grin_core.evaluation.probes import run_probes
from grin_core.scoring.gri import gri_scores
from tests.core.test_probes import FORGET, HOLDOUT

CHOICE = [{"question": "Capital of France?", "answer": "Paris", "perturbed_answer": ["Rome", "Oslo"]}]


def heard(calls):
    return lambda what, done, total: calls.append((what, done, total))


def assert_counted(calls, total):
    assert [(done, t) for _, done, t in calls] == [(n, total) for n in range(total)]
    texts = [r[k] for r in FORGET + HOLDOUT for k in ("question", "answer")]
    assert not any(text in what for what, _, _ in calls for text in texts)


def test_evaluation_announces_each_pass_and_counts_to_its_total(tiny_model, tiny_tokenizer):
    calls = []
    suite = EvalSuite(forget=FORGET, retain=FORGET[:2], world_facts=CHOICE, holdout=HOLDOUT)
    evaluate(tiny_model, tiny_tokenizer, suite, max_new_tokens=4, progress=False, on_step=heard(calls))
    assert_counted(calls, 7)  # 3 parts x (answers + likelihood) + the holdout's likelihood
    assert calls[0][0] == "forget: greedy answers to 4 questions"
    assert calls[-1][0] == "holdout: likelihood of 2 answers"


def test_probes_and_scoring_announce_each_step(tiny_model, tiny_tokenizer):
    calls = []
    run_probes(
        tiny_model,
        tiny_tokenizer,
        EvalSuite(forget=FORGET, holdout=HOLDOUT),
        probes=("paraphrase", "formats"),
        relearn=True,
        relearn_steps=1,
        max_new_tokens=4,
        on_step=heard(calls),
    )
    assert_counted(calls, 3)
    assert [what for what, _, _ in calls] == ["probe: paraphrase", "probe: formats", "probe: relearn"]
    calls.clear()
    gri_scores(tiny_model, tiny_tokenizer, FORGET, HOLDOUT, on_step=heard(calls))
    assert [what for what, _, _ in calls] == ["gradients of 4 forget records", "gradients of 2 retain records"]
    assert_counted(calls, 2)
