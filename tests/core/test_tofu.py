"""TOFU author subsets are deterministic and the eval suite belongs to the chosen authors."""

import pytest

from grin_core.data.tofu import TofuSubset, attach_keywords, load_eval_suite, load_split, load_tofu
from grin_core.models.train import records_sha256


@pytest.mark.parametrize(
    ("n", "split", "forget", "n_retain"),
    [
        (40, "forget10", (196, 197, 198, 199), 36),
        (40, "forget05", (198, 199), 38),
        (40, "forget01", (199,), 39),
        (5, "forget10", (199,), 4),
        (200, "forget10", tuple(range(180, 200)), 180),
    ],
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
    sizes = (len(a.forget), len(a.retain), len(a.general))
    assert sizes == (40, 360, 10)
    retrain_is_retain_and_general = records_sha256(a.retrain) == records_sha256(a.retain + a.general)
    assert retrain_is_retain_and_general


def test_forget_files_are_normalised(tofu_dir):
    rows = load_split("forget01", tofu_dir)
    n_rows, keys = len(rows), set(rows[0])
    assert n_rows == 40 and keys == {"question", "answer"}


def test_eval_suite_parts(tofu_dir):
    subset = TofuSubset(40, "forget10")
    data, suite = load_tofu(subset, tofu_dir), load_eval_suite(subset, tofu_dir)
    # Compare hashes and counts in local ints, never records: pytest prints an assert's operands,
    # and a failing assert must not print forget-set text.
    forget_hashes_match = records_sha256(suite.forget) == records_sha256(data.forget)
    assert forget_hashes_match
    n_forget, n_retain, n_holdout = len(suite.forget), len(suite.retain), len(suite.holdout)
    n_real, n_world = len(suite.real_authors), len(suite.world_facts)
    with_options = sum(len(r["perturbed_answer"]) == 5 and bool(r["paraphrased_answer"]) for r in suite.forget)
    assert with_options == n_forget == n_holdout == 80
    retain_questions = {r["question"] for r in data.retain}
    in_retain = sum(r["question"] in retain_questions for r in suite.retain)
    assert in_retain == n_retain == 400  # retain_perturbed covers authors 0-22, all retained here
    assert (n_real, n_world) == (100, 117)
    n_pairs = sum(len(r["keywords"]) for r in suite.forget)
    n_found = sum(k in r["answer"] and k not in r["question"] for r in suite.forget for k in r["keywords"])
    assert n_pairs > 0 and n_found == n_pairs


def test_keywords_the_question_already_gives_are_not_counted():
    # Made-up names, not TOFU's: a failing assert prints its operands.
    records = [{"question": "Where was Jane Q. Doe born?", "answer": "Jane Q. Doe was born in Springfield."}]
    [record] = attach_keywords(records, ["Jane Q. Doe", "Springfield", "Paris"])
    assert record["keywords"] == ["Springfield"]
