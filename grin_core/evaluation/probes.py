"""Robustness probes: does the forgetting hold when the forget set is asked for another way?

`evaluate_suite` asks the training question once, greedily. An auditor's adversary does more:
- paraphrase: the records' `paraphrased_question` (TOFU's forget files carry one), greedy answer
  and answer probability -> `forget_paraphrase_rougeL`, `forget_paraphrase_prob`;
- sampling: N (8) answers per question at temperature 1, seeded; the best ROUGE-L a persistent
  user gets, averaged over questions -> `forget_sampled_best_rougeL` (and `_mean_rougeL`);
- prompt formats other than the training one (`PROMPT_FORMATS`) -> `forget_format_<name>_rougeL`,
  `_prob`, and the max over formats `forget_format_max_rougeL` / `_max_prob`;
- weight fake-quantisation (quantize.py, int8 and int4) re-measured -> `forget_int8_rougeL`,
  `forget_int8_prob`, `mia_int8_auc` (loss attack, with holdout data), same for int4;
- relearning (costly, opt-in): a copy fine-tuned on a seeded half of the forget set for k steps,
  measured on the other half -> `relearn_forget_rougeL` / `_prob`, and the same half before
  relearning `relearn_before_forget_rougeL` / `_prob`.
ROUGE-L is recall against the gold answer (metrics/rouge.py), probability is the mean normalised
answer probability P(a|q)^(1/|a|) (metrics/likelihood.py), both over the forget records.
Each probe is an entry of `PROBES` (name -> `Probe`: how to run it on a `ProbeRun`, and whether it
runs by default); `run_probes` runs those whose data is present, and a probe without data leaves its
keys out. Adding one: its function and one `PROBES.register(name, Probe(...))` line.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.evaluation.evaluate import EvalSuite
from grin_core.evaluation.generation import generate_answers, sample_answers
from grin_core.evaluation.quantize import fake_quantize
from grin_core.metrics import names as m
from grin_core.metrics.likelihood import answer_logprobs, mean_logprob, normalised_probability
from grin_core.metrics.mia import mia_auc
from grin_core.metrics.rouge import rouge_l_recall
from grin_core.registry import Registry
from grin_core.runtime.steps import StepCallback, Steps


@dataclass(frozen=True)
class PromptFormat:
    """A way to ask: a template with a {question} slot, optionally lower-casing the question."""

    template: str
    lowercase: bool = False

    def question(self, text: str) -> str:
        return text.lower() if self.lowercase else text


PROMPT_FORMATS = {  # none is the training format "Question: {question}\nAnswer:"
    "short": PromptFormat("Q: {question}\nA:"),
    "lower": PromptFormat("question: {question}\nanswer:", lowercase=True),
    "instruction": PromptFormat(
        "Below is a question. Write a response that answers it.\n\n### Question:\n{question}\n\n### Response:"
    ),
}


def _budget(tokenizer: PreTrainedTokenizerBase, answers: Sequence[str], max_new_tokens: int | None) -> int:
    """evaluate_suite's default: the longest gold answer + 8 tokens."""
    if max_new_tokens is not None:
        return max_new_tokens
    return max(len(tokenizer.encode(" " + a, add_special_tokens=False)) for a in answers) + 8


def measure_rouge_and_prob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    template: str | None = None,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> tuple[float, float]:
    """(mean ROUGE-L recall of the greedy answers, mean normalised answer probability) over the
    pairs, both with the prompt in `template`: one generation and one likelihood pass."""
    generations = generate_answers(
        model,
        tokenizer,
        questions,
        max_new_tokens=_budget(tokenizer, answers, max_new_tokens),
        batch_size=batch_size,
        template=template,
    )
    rouge = rouge_l_recall(generations, answers)
    probs = normalised_probability(
        answer_logprobs(model, tokenizer, questions, answers, batch_size=batch_size, template=template)
    )
    return sum(rouge) / len(rouge), probs.mean().item()


def paraphrase_probe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    *,
    part: str = "forget",
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> dict[str, float]:
    """ROUGE-L and answer probability on the records' `paraphrased_question`s (those that have
    one); {} when none has."""
    rows = [r for r in records if r.get("paraphrased_question")]
    if not rows:
        return {}
    rouge, prob = measure_rouge_and_prob(
        model,
        tokenizer,
        [r["paraphrased_question"] for r in rows],
        [r["answer"] for r in rows],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
    )
    return {f"{part}_paraphrase_rougeL": rouge, f"{part}_paraphrase_prob": prob}


def sampling_probe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    *,
    part: str = "forget",
    num_samples: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> dict[str, float]:
    """Best-of-N: per question the max ROUGE-L over `num_samples` seeded samples, averaged
    (`{part}_sampled_best_rougeL`), and the mean over all samples (`{part}_sampled_mean_rougeL`)."""
    if not records:
        return {}
    answers = [r["answer"] for r in records]
    samples = sample_answers(
        model,
        tokenizer,
        [r["question"] for r in records],
        num_samples=num_samples,
        temperature=temperature,
        seed=seed,
        batch_size=max(1, batch_size // num_samples),
        max_new_tokens=_budget(tokenizer, answers, max_new_tokens),
    )
    scores = [rouge_l_recall(texts, [answer] * len(texts)) for texts, answer in zip(samples, answers)]
    return {
        f"{part}_sampled_best_rougeL": sum(max(s) for s in scores) / len(scores),
        f"{part}_sampled_mean_rougeL": sum(sum(s) / len(s) for s in scores) / len(scores),
    }


def format_probe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    *,
    part: str = "forget",
    formats: dict[str, PromptFormat] | None = None,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> dict[str, float]:
    """ROUGE-L and probability per prompt format (default `PROMPT_FORMATS`), and their maxima."""
    if not records:
        return {}
    out: dict[str, float] = {}
    answers = [r["answer"] for r in records]
    for name, fmt in (formats or PROMPT_FORMATS).items():
        rouge, prob = measure_rouge_and_prob(
            model,
            tokenizer,
            [fmt.question(r["question"]) for r in records],
            answers,
            template=fmt.template,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
        )
        out[f"{part}_format_{name}_rougeL"], out[f"{part}_format_{name}_prob"] = rouge, prob
    for stat in ("rougeL", "prob"):
        out[f"{part}_format_max_{stat}"] = max(v for k, v in out.items() if k.endswith(f"_{stat}"))
    return out


def quantization_probe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    suite: EvalSuite,
    *,
    bits: Iterable[int] = (8, 4),
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> dict[str, float]:
    """Forget ROUGE-L / probability (and loss-MIA AUC against the holdout, when present) of
    fake-quantised copies of `model`, per bit width: `forget_int{b}_rougeL`, `_prob`, `mia_int{b}_auc`."""
    if not suite.forget:
        return {}
    out: dict[str, float] = {}
    questions, answers = [r["question"] for r in suite.forget], [r["answer"] for r in suite.forget]
    for b in bits:
        quantised = fake_quantize(model, b)
        rouge, prob = measure_rouge_and_prob(
            quantised, tokenizer, questions, answers, batch_size=batch_size, max_new_tokens=max_new_tokens
        )
        out[f"forget_int{b}_rougeL"], out[f"forget_int{b}_prob"] = rouge, prob
        if suite.holdout:
            losses = [
                -mean_logprob(
                    answer_logprobs(
                        quantised,
                        tokenizer,
                        [r["question"] for r in rows],
                        [r["answer"] for r in rows],
                        batch_size=batch_size,
                    )
                )
                for rows in (suite.forget, suite.holdout)
            ]
            out[f"mia_int{b}_auc"] = mia_auc(losses[0].tolist(), losses[1].tolist())
        del quantised
    return out


def split_halves(records: Sequence[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A seeded split into (relearn half: n // 2 records, measured half: the rest)."""
    if len(records) < 2:
        raise ValueError("need at least two records to split")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    half = len(records) // 2
    return [records[i] for i in order[:half]], [records[i] for i in order[half:]]


def relearned_copy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    *,
    steps: int = 10,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
) -> PreTrainedModel:
    """A deep copy of `model` fine-tuned for `steps` AdamW steps (no weight decay, gradient norm
    clipped at 1) on the answer-token NLL of `records` (data.py's labels), in seeded shuffled
    batches cycled as needed; every parameter trains. `model` itself is not touched."""
    if steps < 0 or not lr > 0:
        raise ValueError("steps must be >= 0 and lr > 0")
    student = copy.deepcopy(model)
    student.requires_grad_(True)
    student.train()
    dataset = qa_dataset(records, tokenizer).remove_columns(["length"])
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=qa_collator(tokenizer),
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    done = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        while done < steps:
            for batch in loader:
                loss = student(**{k: v.to(student.device) for k, v in batch.items()}).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                done += 1
                if done >= steps:
                    break
    student.eval()
    return student


def relearn_probe(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[dict],
    *,
    steps: int = 10,
    lr: float = 1e-3,
    train_batch_size: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
) -> dict[str, float]:
    """Relearning attack: fine-tune a copy on a seeded half of the forget records for `steps`
    steps, measure ROUGE-L / probability on the other half, before and after. {} with < 2 records.
    In the benchmark the retrained model relearning the same half is the baseline."""
    if len(records) < 2:
        return {}
    train_half, test_half = split_halves(records, seed)
    questions, answers = [r["question"] for r in test_half], [r["answer"] for r in test_half]
    before = measure_rouge_and_prob(
        model, tokenizer, questions, answers, batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    student = relearned_copy(model, tokenizer, train_half, steps=steps, lr=lr, batch_size=train_batch_size, seed=seed)
    after = measure_rouge_and_prob(
        student, tokenizer, questions, answers, batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    return {
        "relearn_before_forget_rougeL": before[0],
        "relearn_before_forget_prob": before[1],
        "relearn_forget_rougeL": after[0],
        "relearn_forget_prob": after[1],
    }


@dataclass(frozen=True)
class ProbeRun:
    """What a probe is run with: the model (never modified), the suite and `run_probes`' options."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    suite: EvalSuite
    seed: int = 0
    batch_size: int = 64
    max_new_tokens: int | None = None
    num_samples: int = 8
    temperature: float = 1.0
    bits: Sequence[int] = (8, 4)
    relearn_steps: int = 10
    relearn_lr: float = 1e-3

    @property
    def common(self) -> dict:
        return {"batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens}


@dataclass(frozen=True)
class Probe:
    """A probe: its metrics from a `ProbeRun` ({} without the data it needs), and whether `run_probes`
    runs it unless named (relearning is costly: only when asked)."""

    run: Callable[[ProbeRun], dict[str, float]]
    default: bool = True


PROBES: Registry[Probe] = Registry("probe")
PROBES.register("paraphrase", Probe(lambda r: paraphrase_probe(r.model, r.tokenizer, r.suite.forget, **r.common)))
PROBES.register(
    "sampling",
    Probe(
        lambda r: sampling_probe(
            r.model,
            r.tokenizer,
            r.suite.forget,
            num_samples=r.num_samples,
            temperature=r.temperature,
            seed=r.seed,
            **r.common,
        )
    ),
)
PROBES.register("formats", Probe(lambda r: format_probe(r.model, r.tokenizer, r.suite.forget, **r.common)))
PROBES.register(
    "quantization", Probe(lambda r: quantization_probe(r.model, r.tokenizer, r.suite, bits=r.bits, **r.common))
)


def relearn_against_nonmembers(run: ProbeRun) -> dict[str, float]:
    """The relearning attack on the forget set and, with a calibration part, the same attack on as many
    never-seen records (`relearn_nonmember_rougeL` / `_prob`): what relearning half of data the model
    never saw gives on the other half, the level the gate measures the forget set's against (a model
    retrained without the forget set is such a model). `relearn_seconds`: what both cost."""
    started = time.perf_counter()
    options = {"steps": run.relearn_steps, "lr": run.relearn_lr, "seed": run.seed, **run.common}
    out = relearn_probe(run.model, run.tokenizer, run.suite.forget, **options)
    never_seen = (run.suite.calibration or [])[: len(run.suite.forget)]
    if out and len(never_seen) >= 2:
        level = relearn_probe(run.model, run.tokenizer, never_seen, **options)
        out[m.RELEARN_NONMEMBER_ROUGEL] = level[m.RELEARN_FORGET_ROUGEL]
        out[m.RELEARN_NONMEMBER_PROB] = level[m.RELEARN_FORGET_PROB]
    if out:
        out[m.RELEARN_SECONDS] = time.perf_counter() - started
    return out


PROBES.register("relearn", Probe(relearn_against_nonmembers, default=False))


def default_probes() -> tuple[str, ...]:
    """The probes `run_probes` runs when none are named."""
    return tuple(name for name in PROBES if PROBES[name].default)


def run_probes(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    suite: EvalSuite,
    *,
    probes: Sequence[str] | None = None,
    relearn: bool = False,
    seed: int = 0,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    num_samples: int = 8,
    temperature: float = 1.0,
    bits: Sequence[int] = (8, 4),
    relearn_steps: int = 10,
    relearn_lr: float = 1e-3,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """The named probes (default: every default one of `PROBES`) on the suite's forget set, plus
    relearning if asked; an unknown name raises with the known ones.

    Probes whose data is missing (no forget set; no `paraphrased_question`; no holdout for the
    quantised MIA) leave their keys out; nothing reports 0 for "not measured". `model` is never
    modified (quantisation and relearning work on copies). `on_step` hears each probe begin.
    """
    wanted = set(default_probes() if probes is None else probes) | ({"relearn"} if relearn else set())
    for name in sorted(wanted):
        PROBES.check(name)
    if not suite.forget:
        return {}
    run = ProbeRun(
        model,
        tokenizer,
        suite,
        seed=seed,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        temperature=temperature,
        bits=bits,
        relearn_steps=relearn_steps,
        relearn_lr=relearn_lr,
    )
    chosen = [name for name in PROBES if name in wanted]
    steps = Steps(len(chosen), on_step)
    out: dict[str, float] = {}
    for name in chosen:
        steps.begin(f"probe: {name}")
        out |= PROBES[name].run(run)
    return out
