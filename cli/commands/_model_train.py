"""`grin model train`'s checks and its report. Everything the command is given is checked before the
`train-model` flow starts: the line's name, the recipe against the recipe of its kind (from scratch or
from a base), the base in the registry, the manifest and eval suite from the intake roots; so bad input
ends in one line with nothing written or trained."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.contracts import ObjectRef


def recipe_values(pairs: list[str], from_base: bool) -> dict[str, Any]:
    """The `--recipe key=value` pairs as typed fields of the recipe the run will use (`FinetuneConfig` from a
    base, `TrainConfig` from scratch); InvalidRequestError naming the bad key or value."""
    from grin_core.models.recipe import checked_recipe, parse_pairs
    from infra.errors import InvalidRequestError

    if from_base:
        from grin_core.models.finetune import FinetuneConfig as recipe_type
    else:
        from grin_core.models.train import TrainConfig as recipe_type
    try:
        values = parse_pairs(pairs)
        checked_recipe(recipe_type, values)
    except ValueError as exc:
        raise InvalidRequestError(f"--recipe: {exc}") from None
    return values


def checked_base(ref: str) -> str:
    """The registry version `--base` names, as `line@version`, if a line may be fine-tuned from it."""
    from cli.commands._session import transaction
    from infra.base_versions import fine_tune_base

    with transaction() as session:
        version = fine_tune_base(ref, session=session)
        return f"{version.model.name}@{version.version}"


def checked_data(manifest: str, eval_suite: str | None, settings) -> tuple[ObjectRef, ObjectRef | None]:
    """The manifest and eval suite read from the intake roots and checked as QA; the suite is then stored
    content-addressed, as import and register keep suites (the last step: nothing is written before)."""
    from infra.line_inputs import read_eval_suite, read_qa_records
    from infra.storage import open_store
    from tasks.contracts import ObjectRef

    records = read_qa_records(manifest, role="--manifest", settings=settings)
    suite = read_eval_suite(eval_suite, role="--eval-suite", settings=settings)[0] if eval_suite else None
    stored = open_store(settings).put_bytes(f"suites/{suite.sha256}.json", suite.data) if suite else None
    return (
        ObjectRef(uri=records.uri, sha256=records.sha256),
        ObjectRef(uri=stored.uri, sha256=suite.sha256) if suite else None,
    )


def report(summary: dict[str, Any]) -> list[str]:
    """What the run did, for people: where the version came from and whether its stop loss or its budget
    ended the training (a budget stop short of the stop loss is under-trained by its own recipe)."""
    base = summary.get("fine_tuned_from")
    origin = (
        f"fine-tuned from {base['model']}@{base['version']} (checkpoint {base['checkpoint']['sha256'][:12]})"
        if base
        else "trained from scratch"
    )
    stop_loss, loss = summary["recipe"].get("stop_loss"), summary["final_loss"]
    if summary["stopped_by"] == "stop_loss":
        ending = f"stopped by its stop loss ({stop_loss})"
    elif stop_loss is None:
        ending = "stopped by its budget (no stop loss)"
    else:
        ending = f"stopped by its budget, above its stop loss {stop_loss}: under-trained by its own recipe"
    loss_text = "no loss logged" if loss is None else f"final loss {loss:.4g}"
    return [
        f"{summary['model']} version {summary['version']}: {origin}",
        f"{summary['epochs']} epochs, {loss_text}, {ending}",
        f"checkpoint sha256 {summary['checkpoint']['sha256']}",
    ]
