"""TOFU (Maini et al. 2024, arXiv 2401.06121): deterministic author subsets and their eval suite.

Files are read with `datasets` from a local directory (the layout of shared/data/tofu/) or, when
no directory is given, from the hub dataset `locuslab/TOFU` under the same split names.

Subsets. `tofu_subset(n_authors, split)` keeps the first `n_authors` authors' worth of TOFU:
the forget authors are the last ceil(frac * n_authors) authors of the standard split (frac 0.01 /
0.05 / 0.10 for forget01 / forget05 / forget10, at least one), e.g. 40 authors with forget10 ->
authors 196-199; the retain authors are 0 .. n_authors - n_forget - 1. Retain truth ratio uses the
rows of `retain_perturbed` (which covers authors 0-22) that belong to the retain authors.

General knowledge. A model trained from scratch knows no world facts, so the target model's
training set (and the retrained baseline's) is the chosen authors' QA plus the `real_authors` and
`world_facts` questions with their correct answers. Model utility then watches whether unlearning
damages that knowledge, as TOFU's utility does for a pretrained model.

Keywords. A forget record's `keywords` are the phrases of the split's `forget*_fts.json` that occur
(case-sensitive substring) in its gold answer but not in its question: a phrase the question already
gives (most questions name the author) is echoed by any model and measures nothing. Questions left
with none get an empty list.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import load_dataset

from grin_core.evaluation.evaluate import EvalSuite

N_AUTHORS = 200
QA_PER_AUTHOR = 20
FORGET_FRACTIONS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}
HUB_DATASET = "locuslab/TOFU"
CALIBRATION_AUTHORS = 10  # 200 QA: single author pairs range 0.45-0.70 in AUC, a pooled set is stable

Record = dict[str, object]


def load_split(name: str, data_dir: str | Path | None = None) -> list[Record]:
    """Rows of one TOFU split as dicts; forget files' prompt/response become question/answer."""
    if data_dir is None:
        rows = load_dataset(HUB_DATASET, name, split="train")
    else:
        path = Path(data_dir) / f"{name}.json"
        if not path.exists():
            path = path.with_suffix(".jsonl")
        rows = load_dataset("json", data_files=str(path), split="train")
    renames = {"prompt": "question", "response": "answer"}
    records = [{renames.get(k, k): v for k, v in row.items()} for row in rows]
    if name == "full":  # the hub's copy has no author_id; author k owns rows 20k .. 20k+19
        for i, r in enumerate(records):
            r.setdefault("author_id", i // QA_PER_AUTHOR)
    return records


def load_keywords(split: str, data_dir: str | Path | None) -> list[str]:
    """The key phrases of a forget split (a JSON list of strings, so plain json, not a table)."""
    if data_dir is None:
        return []  # the hub dataset has no fts phrases
    return list(json.loads((Path(data_dir) / f"{split}_fts.json").read_text()))


def attach_keywords(records: Sequence[Mapping], phrases: Sequence[str]) -> list[Record]:
    """Copies of `records` with `keywords`: the phrases in each record's answer and not in its question."""
    return [dict(r, keywords=[p for p in phrases if p in r["answer"] and p not in r["question"]]) for r in records]


@dataclass(frozen=True)
class TofuSubset:
    """Which authors are kept, which of them are forgotten, and how much general knowledge."""

    n_authors: int
    split: str = "forget10"
    n_general: int | None = None  # first n of real_authors and of world_facts; None = all

    def __post_init__(self) -> None:
        if self.split not in FORGET_FRACTIONS:
            raise ValueError(f"split must be one of {sorted(FORGET_FRACTIONS)}, got {self.split!r}")
        if not 2 <= self.n_authors <= N_AUTHORS:
            raise ValueError(f"n_authors must be in 2..{N_AUTHORS}, got {self.n_authors}")
        if self.n_general is not None and self.n_general < 0:
            raise ValueError("n_general must be >= 0")

    @property
    def n_forget(self) -> int:
        return max(1, math.ceil(FORGET_FRACTIONS[self.split] * self.n_authors))

    @property
    def forget_authors(self) -> tuple[int, ...]:
        return tuple(range(N_AUTHORS - self.n_forget, N_AUTHORS))

    @property
    def retain_authors(self) -> tuple[int, ...]:
        return tuple(range(self.n_authors - self.n_forget))

    def calibration_authors(self, n: int = CALIBRATION_AUTHORS) -> tuple[int, ...]:
        """`n` authors of TOFU's training file that no model of this subset learns: the first after
        the retain authors, forget authors skipped (calibration.py: the line's non-member level)."""
        excluded = {*self.retain_authors, *self.forget_authors}
        return tuple(a for a in range(len(self.retain_authors), N_AUTHORS) if a not in excluded)[:n]

    @property
    def holdout_split(self) -> str:
        return self.split.replace("forget", "holdout")


@dataclass
class TofuData:
    """QA records of one subset; `train` is what the target model learns, `retrain` its baseline."""

    subset: TofuSubset
    forget: list[Record]
    retain: list[Record]
    general: list[Record]

    @property
    def train(self) -> list[Record]:
        return self.retain + self.forget + self.general

    @property
    def retrain(self) -> list[Record]:
        return self.retain + self.general


def _general_knowledge(data_dir: str | Path | None, n_general: int | None) -> dict[str, list[Record]]:
    """real_authors / world_facts perturbed rows (question, answer, perturbed_answer), first n."""
    return {name: load_split(f"{name}_perturbed", data_dir)[:n_general] for name in ("real_authors", "world_facts")}


def load_tofu(subset: TofuSubset, data_dir: str | Path | None = None) -> TofuData:
    """The subset's training records: {question, answer, author_id} and general-knowledge QA."""
    full = load_split("full", data_dir)

    def by_author(authors: tuple[int, ...]) -> list[Record]:
        return [r for r in full if r["author_id"] in set(authors)]

    general = [
        {"question": r["question"], "answer": r["answer"]}
        for rows in _general_knowledge(data_dir, subset.n_general).values()
        for r in rows
    ]
    return TofuData(subset, by_author(subset.forget_authors), by_author(subset.retain_authors), general)


def load_calibration(subset: TofuSubset, data_dir: str | Path | None = None) -> list[Record]:
    """{question, answer} of the subset's calibration authors: drawn like its training data, never
    trained on."""
    wanted = set(subset.calibration_authors())
    return [
        {"question": r["question"], "answer": r["answer"]}
        for r in load_split("full", data_dir)
        if r["author_id"] in wanted
    ]


def load_eval_suite(subset: TofuSubset, data_dir: str | Path | None = None) -> EvalSuite:
    """The TOFU eval suite of a subset: every part present.

    forget: the forget authors' rows of `{split}_perturbed` with keywords; retain: the retain
    authors' rows of `retain_perturbed`; real_authors / world_facts: their perturbed files (correct
    answer + wrong options); holdout: the first len(forget) rows of `holdout{01,05,10}`.
    """
    author_of = {r["question"]: r["author_id"] for r in load_split("full", data_dir)}
    forget_set, retain_set = set(subset.forget_authors), set(subset.retain_authors)
    forget = [
        r for r in load_split(f"{subset.split}_perturbed", data_dir) if author_of.get(r["question"]) in forget_set
    ]
    retain = [r for r in load_split("retain_perturbed", data_dir) if author_of.get(r["question"]) in retain_set]
    general = _general_knowledge(data_dir, subset.n_general)
    holdout = load_split(subset.holdout_split, data_dir)[: len(forget)]
    return EvalSuite(
        forget=attach_keywords(forget, load_keywords(subset.split, data_dir)),
        retain=retain or None,
        real_authors=general["real_authors"] or None,
        world_facts=general["world_facts"] or None,
        holdout=holdout,
    )
