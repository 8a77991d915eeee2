"""TOFU author subsets are deterministic and the eval suite belongs to the chosen authors."""

import pytest

from grin_core.tofu import TofuSubset, load_eval_suite, load_split, load_tofu
from grin_core.train import records_sha256


@pytest.mark.parametrize(
    ("n", "split", "forget", "n_retain"),
    [(40, "forget10", (196, 197, 198, 199), 36), (40, "forget05", (198, 199), 38),
     (40, "forget01", (199,), 39), (5, "forget10", (199,), 4), (200, "forget10", tuple(range(180, 200)), 180)],
)
def test_subset_authors(n, split, forget, n_retain):
    subset = TofuSubset(n, split)
    assert subset.forget_authors == forget
    assert subset.retain_authors == tuple(range(n_retain))


def test_subset_rejects_bad_arguments():
    with pytest.raises(ValueError):
        TofuSubset(40, "forget20")
    with pytest.raises(ValueError):
        TofuSubset(1)


def test_load_is_deterministic(tofu_dir):
    subset = TofuSubset(20, "forget10", n_general=5)
    a, b = load_tofu(subset, tofu_dir), load_tofu(subset, tofu_dir)
    assert records_sha256(a.train) == records_sha256(b.train)
    assert {r["author_id"] for r in a.forget} == {198, 199}
    assert {r["author_id"] for r in a.retain} == set(range(18))
    assert len(a.forget) == 40 and len(a.retain) == 360 and len(a.general) == 10
    assert a.retrain == a.retain + a.general


def test_forget_files_are_normalised(tofu_dir):
    rows = load_split("forget01", tofu_dir)
    assert len(rows) == 40 and set(rows[0]) == {"question", "answer"}


def test_eval_suite_parts(tofu_dir):
    subset = TofuSubset(40, "forget10")
    data, suite = load_tofu(subset, tofu_dir), load_eval_suite(subset, tofu_dir)
    assert [r["question"] for r in suite.forget] == [r["question"] for r in data.forget]
    assert all(len(r["perturbed_answer"]) == 5 and r["paraphrased_answer"] for r in suite.forget)
    retain_questions = {r["question"] for r in data.retain}
    assert suite.retain and all(r["question"] in retain_questions for r in suite.retain)
    assert len(suite.holdout) == len(suite.forget) == 80
    assert len(suite.real_authors) == 100 and len(suite.world_facts) == 117
    keyword_pairs = [(k, r["answer"]) for r in suite.forget for k in r["keywords"]]
    assert keyword_pairs and all(k in answer for k, answer in keyword_pairs)
