"""Train a target model from a QA manifest in storage, from scratch or fine-tuned from a registered base,
and register it as the next version of a model line.

From scratch: a TinyLlama with its own BPE tokenizer (the demo, the benchmark). From a base (`base`, a
registry reference such as `smol@1`): the base's checkpoint fine-tuned with its own architecture,
tokenizer and prompt template, e.g. a chat model brought in by `grin model import`. Either way the
version records the whole recipe and how the run ended (`stopped_by`: its stop loss, or its budget with
the stop loss not reached), and a fine-tuned version its base, pinned to its number and checkpoint.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from infra.errors import InvalidRequestError
from tasks.base_version import resolve_base
from tasks.calibrate import calibrate_line
from tasks.contracts import ObjectRef
from tasks.dispatch import run_ml_stage
from tasks.finetune import finetune_target
from tasks.register_trained import register_trained
from tasks.train import TrainOutcome, train_target


@flow(name="train-model", flow_run_name="train-{name}", persist_result=True)
def train_line(
    name: str,
    manifest: ObjectRef,
    eval_suite: ObjectRef | None = None,
    architecture: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    description: str = "",
    gate_policy: dict[str, Any] | None = None,
    base: str | None = None,
) -> dict[str, Any]:
    """Train (or reuse a cached) target model on `manifest` and register it under `name`.

    `base` (`line@version`) fine-tunes that registered version instead of training from scratch;
    `architecture` sets TinyLlamaConfig fields (from scratch only) and `recipe` the recipe's fields
    (TrainConfig from scratch, FinetuneConfig from a base; defaults otherwise, all recorded);
    `gate_policy` holds the model line's overrides of the service's gate policy (new lines only).
    An eval suite with `calibration` and `holdout` parts sets the line's `mia_reference_auc`: the
    non-member level measured on this version (grin_core/evaluation/calibration.py), not a relaxation.
    """
    outcome, origin = _train(name, manifest, architecture, recipe, base)
    if outcome.short_of_stop_loss:
        get_run_logger().warning(
            "%s: its budget of %d epochs ended it at loss %.4g, above its stop loss %s; registered as trained",
            name,
            outcome.epochs,
            outcome.final_loss,
            outcome.recipe.get("stop_loss"),
        )
    reference_auc = (
        run_ml_stage(calibrate_line, label=name, checkpoint=outcome.checkpoint, eval_suite=eval_suite)
        if eval_suite
        else None
    )
    if reference_auc is not None and "mia_reference_auc" not in (gate_policy or {}):
        gate_policy = {**(gate_policy or {}), "mia_reference_auc": reference_auc}
    run = {
        "epochs": outcome.epochs,
        "final_loss": outcome.final_loss,
        "stopped_by": outcome.stopped_by,
        "train_s": outcome.train_s,
        "recipe": outcome.recipe,
    }
    summary = {**origin, **run, "mia_reference_auc": reference_auc, "manifest_sha256": manifest.sha256}
    version = register_trained(name, outcome.checkpoint, manifest, eval_suite, description, summary, gate_policy)
    return {
        "model": name,
        "version": version,
        "checkpoint": outcome.checkpoint.model_dump(),
        **run,
        "fine_tuned_from": origin.get("fine_tuned_from"),
        "worker_pid": outcome.worker.pid,
        "mia_reference_auc": reference_auc,
    }


def _train(
    name: str, manifest: ObjectRef, architecture: dict[str, Any] | None, recipe: dict[str, Any] | None, base: str | None
) -> tuple[TrainOutcome, dict[str, Any]]:
    """The training stage, from scratch or from `base`, and what the version records of where it came from."""
    if base is None:
        outcome = run_ml_stage(
            train_target, label=name, manifest=manifest, model_config=architecture or {}, train_config=recipe or {}
        )
        return outcome, {"trained_from": "scratch", "trained_from_scratch": True, "architecture": outcome.architecture}
    if architecture:
        raise InvalidRequestError("a line fine-tuned from a base keeps the base's architecture: give no architecture")
    source = resolve_base(base)
    outcome = run_ml_stage(finetune_target, label=name, manifest=manifest, base=source.checkpoint, recipe=recipe or {})
    return outcome, {"trained_from": "base", "trained_from_scratch": False, "fine_tuned_from": source.model_dump()}
