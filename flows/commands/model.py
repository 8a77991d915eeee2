"""`grin model`: the model registry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.commands._output import JsonFlag, emit_json, emit_table, reports_errors

if TYPE_CHECKING:
    from infra.db.models import RegisteredModel

app = typer.Typer(help="Register models and list the registry.", no_args_is_help=True)


def model_summary(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "description": model.description,
        "versions": [v.version for v in model.versions],
        "aliases": {a.alias: a.version.version for a in model.aliases},
        # versions that still hold data deleted by a later version's tickets: version -> ticket ids
        "holds_deleted_data": {
            v.version: sorted(v.holds_deleted_data_of) for v in model.versions if v.holds_deleted_data_of
        },
        "purged_versions": [v.version for v in model.versions if v.purged_at is not None],
        "gate_policy": model.gate_policy,
        "created_at": model.created_at.isoformat(),
    }


@app.command()
@reports_errors
def register(
    name: Annotated[str, typer.Argument(help="Model name: letters, digits, '.', '_' or '-'.")],
    description: Annotated[str | None, typer.Option(help="What the model is.")] = None,
    gate_policy: Annotated[
        str | None,
        typer.Option(help="JSON object of gate policy overrides, e.g. '{\"max_rounds\": 2}'."),
    ] = None,
    checkpoint_uri: Annotated[
        str | None, typer.Option(help="Register this checkpoint as version 1.")
    ] = None,
    checkpoint_sha256: Annotated[
        str | None, typer.Option(help="sha256 of the checkpoint's weights.")
    ] = None,
    training_manifest_uri: Annotated[
        str | None, typer.Option(help="The QA records version 1 was trained on (retain sampling).")
    ] = None,
    eval_suite_uri: Annotated[
        str | None, typer.Option(help="The evaluation QA sets the gate measures version 1 on.")
    ] = None,
    alias: Annotated[str, typer.Option(help="Alias to point at version 1.")] = "production",
    as_json: JsonFlag = False,
) -> None:
    """Register model NAME, optionally with its first checkpoint."""
    from flows.commands._session import transaction
    from infra import registry
    from infra.errors import InvalidRequestError

    try:
        overrides = json.loads(gate_policy) if gate_policy else None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"--gate-policy is not JSON: {exc}") from None
    if overrides is not None and not isinstance(overrides, dict):
        raise InvalidRequestError("--gate-policy must be a JSON object")
    if bool(checkpoint_uri) != bool(checkpoint_sha256):
        raise InvalidRequestError("--checkpoint-uri and --checkpoint-sha256 go together")
    if checkpoint_uri and checkpoint_sha256:
        # Before any row: the checkpoint must be complete, match its hash and hold no pickles.
        from infra.checkpoint_verify import verify_checkpoint_uri
        from infra.settings import get_settings

        verify_checkpoint_uri(checkpoint_uri, checkpoint_sha256, settings=get_settings())
    with transaction() as session:
        model = registry.register_model(
            name, session=session, description=description, gate_policy=overrides
        )
        if checkpoint_uri and checkpoint_sha256:
            version = registry.add_version(
                name,
                session=session,
                checkpoint_uri=checkpoint_uri,
                checkpoint_sha256=checkpoint_sha256,
                training_manifest_uri=training_manifest_uri,
                eval_suite_uri=eval_suite_uri,
            )
            registry.set_alias(name, alias, version.version, session=session)
        session.refresh(model)
        summary = model_summary(model)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"registered model {name} (versions: {summary['versions'] or 'none'})")


@app.command("list")
@reports_errors
def list_models(as_json: JsonFlag = False) -> None:
    """List registered models, their versions and aliases."""
    from flows.commands._session import transaction
    from infra import registry

    with transaction() as session:
        summaries = [model_summary(m) for m in registry.list_models(session=session)]
    if as_json:
        emit_json(summaries)
        return
    rows = [
        (
            s["name"],
            ", ".join(map(str, s["versions"])),
            ", ".join(f"{a}→{v}" for a, v in s["aliases"].items()),
            "; ".join(
                f"v{v}: tickets {', '.join(map(str, t))}{' (purged)' if v in s['purged_versions'] else ''}"
                for v, t in s["holds_deleted_data"].items()
            ),
            json.dumps(s["gate_policy"]) if s["gate_policy"] else "",
            s["description"],
        )
        for s in summaries
    ]
    emit_table(
        "Registered models",
        ["name", "versions", "aliases", "hold deleted data", "gate overrides", "description"],
        rows,
    )


@app.command()
@reports_errors
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias to move, e.g. production.")],
    version: Annotated[int, typer.Argument(help="Version number to point it at.")],
    override_reason: Annotated[
        str | None,
        typer.Option(help="Required to move onto a version that holds data deleted by later tickets; audited."),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who moves it (audit record).")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Point ALIAS of model NAME at VERSION."""
    from flows.commands._session import transaction
    from infra import registry

    with transaction() as session:
        registry.set_alias(name, alias_name, version, session=session, actor=actor,
                           override_reason=override_reason)
    if as_json:
        emit_json({"model": name, "alias": alias_name, "version": version})
    else:
        typer.echo(f"{name}@{alias_name} → version {version}")


@app.command("purge-superseded")
@reports_errors
def purge_superseded(as_json: JsonFlag = False) -> None:
    """Purge the checkpoints, manifests and eval suites of versions holding deleted data past
    GRIN_SUPERSEDED_PURGE_DAYS (each answered ticket also runs this)."""
    from tasks.purge import purge_superseded_versions

    purged = purge_superseded_versions()
    if as_json:
        emit_json([{"model": m, "version": v} for m, v in purged])
    else:
        typer.echo(", ".join(f"{m}@{v}" for m, v in purged) or "nothing past its grace period")
