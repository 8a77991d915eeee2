"""A user's own model, end to end: a Mistral-family checkpoint trained on its own prompt format, written
with save_pretrained beside its tokenizer, is imported with `grin model import` into PostgreSQL +
moto S3 and answers a deletion ticket with a registered, gated version (ML stages in-process)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM

from grin_core.data.prompts import KEY, set_line_template
from grin_core.data.tofu import load_calibration, load_tofu
from grin_core.models.tokenizer import train_bpe_tokenizer
from grin_core.models.train import train_model
from infra import registry
from infra.storage import open_store
from tasks.resources import sessions
from tests.cli.conftest import Grin
from tests.fixtures.models import (
    MEMORISED_MODEL_CONFIG,
    MEMORISED_SUBSET,
    MEMORISED_TRAIN_CONFIG,
    TOFU_DIR,
)
from tests.fixtures.pipeline import MECHANICS_GATE_POLICY, PublishedModel, file_ticket

pytestmark = pytest.mark.slow
TEMPLATE = "<question>{question}</question>\n<answer>"


def _users_model(directory, records):
    """What a user brings: a Mistral checkpoint and its tokenizer, trained on TEMPLATE (a Llama trained
    here, its weights loaded into the identical Mistral architecture: no sliding window)."""
    tokenizer = train_bpe_tokenizer(
        [f"{TEMPLATE.format(question=r['question'])} {r['answer']}" for r in records],
        vocab_size=MEMORISED_TRAIN_CONFIG.vocab_size,
    )
    set_line_template(tokenizer, TEMPLATE)  # what every prompt of training is built from
    llama = train_model(
        records, MEMORISED_MODEL_CONFIG, MEMORISED_TRAIN_CONFIG, tokenizer=tokenizer, progress=False
    ).model
    c = llama.config
    mistral = MistralForCausalLM(
        MistralConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.hidden_size,
            intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads,
            max_position_embeddings=c.max_position_embeddings,
            rms_norm_eps=c.rms_norm_eps,
            sliding_window=None,
            tie_word_embeddings=False,
            bos_token_id=c.bos_token_id,
            eos_token_id=c.eos_token_id,
            pad_token_id=c.pad_token_id,
        )
    )
    mistral.load_state_dict(llama.state_dict())
    ids = torch.tensor([tokenizer.encode("<question>Who?</question>")])
    assert torch.allclose(mistral(ids).logits, llama(ids).logits, atol=1e-5)  # the same function
    mistral.save_pretrained(directory)
    tokenizer.init_kwargs.pop(KEY)  # a user's tokenizer knows nothing of grin
    tokenizer.save_pretrained(directory)


def test_an_imported_mistral_with_its_own_prompt_answers_a_ticket_with_a_gated_version(inline_settings, tmp_path):
    settings = inline_settings
    data = load_tofu(MEMORISED_SUBSET, TOFU_DIR)
    directory = tmp_path / "users-mistral"
    started = time.perf_counter()
    _users_model(directory, data.train)
    trained_s = time.perf_counter() - started
    store = open_store(settings)
    manifest = store.put_bytes("inbox/line/train.json", json.dumps(data.train).encode())
    from grin_core.data.tofu import load_eval_suite

    suite = load_eval_suite(MEMORISED_SUBSET, TOFU_DIR)
    parts = {
        "retain": suite.retain,
        "real_authors": suite.real_authors,
        "world_facts": suite.world_facts,
        "calibration": load_calibration(MEMORISED_SUBSET, TOFU_DIR),
    }
    eval_suite = store.put_bytes("inbox/line/eval_suite.json", json.dumps(parts).encode())
    holdout = store.put_bytes("inbox/line/holdout.json", json.dumps(suite.holdout).encode())

    grin = Grin(settings)
    imported = grin.json(
        "model",
        "import",
        "users-mistral",
        str(directory),
        "--training-manifest",
        manifest.uri,
        "--eval-suite",
        eval_suite.uri,
        "--holdout",
        holdout.uri,
        "--prompt-template",
        TEMPLATE,
    )
    assert imported["architecture"] == "MistralForCausalLM" and imported["prompt_template"] == TEMPLATE
    assert 0.5 < imported["mia_reference_auc"] < 0.9  # measured on the import, in the line's own prompt

    forget = [{"question": r["question"], "answer": r["answer"]} for r in data.forget]
    keywords = sorted({k for r in suite.forget for k in r.get("keywords", [])})
    forget_uri = store.put_bytes("inbox/users-mistral/forget.json", json.dumps(forget).encode()).uri
    keywords_uri = store.put_bytes("inbox/users-mistral/keywords.json", json.dumps(keywords).encode()).uri
    # The import is under test, not the schedule: the pipeline tests' ticket and gate (tests/fixtures/pipeline.py)
    # over the measured level.
    with sessions(settings).begin() as session:
        line = registry.get_model("users-mistral", session=session)
        line.gate_policy = {**(line.gate_policy or {}), **MECHANICS_GATE_POLICY}
    ticket = file_ticket(
        settings,
        PublishedModel("users-mistral", forget, keywords),
        forget_uri,
        keywords_uri,
    )

    from flows.tickets import process_ticket

    report = process_ticket(ticket)
    assert report.outcome == "completed" and report.version == 2, (report.reason, report.rounds)
    assert report.gate.passed
    assert report.before["forget_rougeL"] > 0.8  # it had learnt the forget set in its own format
    assert (
        report.after["forget_rougeL"] <= 0.4 and report.after["retain_rougeL"] >= 0.9 * report.before["retain_rougeL"]
    )
    print(
        json.dumps(
            {
                "before": {k: round(report.before[k], 3) for k in ("forget_rougeL", "mia_auc", "retain_rougeL")},
                "after": {k: round(report.after[k], 3) for k in ("forget_rougeL", "mia_auc", "retain_rougeL")},
                "mia_reference_auc": imported["mia_reference_auc"],
                "training_s": round(trained_s, 1),
            }
        )
    )
