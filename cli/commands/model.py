"""`grin model`: the model registry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.commands._output import JsonFlag, emit_json, emit_table, reports_errors

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
    checkpoint_uri: Annotated[str | None, typer.Option(help="Register this checkpoint as version 1.")] = None,
    checkpoint_sha256: Annotated[str | None, typer.Option(help="sha256 of the checkpoint's weights.")] = None,
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
    from cli.commands._session import transaction
    from infra import registration, registry
    from infra.registry import NewVersion

    overrides = _register_arguments(
        name, alias, gate_policy, checkpoint_uri, checkpoint_sha256, training_manifest_uri or eval_suite_uri
    )
    if checkpoint_uri and checkpoint_sha256:
        manifest, suite = _checked_checkpoint(checkpoint_uri, checkpoint_sha256, training_manifest_uri, eval_suite_uri)
    with transaction() as session:
        model = registry.register_model(name, session=session, description=description, gate_policy=overrides)
        if checkpoint_uri and checkpoint_sha256:
            if suite is not None:  # the checked bytes, content-addressed, as import and the pipeline keep suites
                from infra.settings import get_settings
                from infra.storage import open_store

                eval_suite_uri = open_store(get_settings()).put_bytes(f"suites/{suite.sha256}.json", suite.data).uri
            registration.register_version(
                name,
                NewVersion(
                    checkpoint_uri=checkpoint_uri,
                    checkpoint_sha256=checkpoint_sha256,
                    training_manifest_uri=manifest.uri if manifest else None,
                    training_manifest_sha256=manifest.sha256 if manifest else None,
                    eval_suite_uri=eval_suite_uri,
                ),
                session=session,
                alias=alias,
            )
        session.refresh(model)
        summary = model_summary(model)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"registered model {name} (versions: {summary['versions'] or 'none'})")


def _register_arguments(
    name: str,
    alias: str,
    gate_policy: str | None,
    checkpoint_uri: str | None,
    checkpoint_sha256: str | None,
    data_uri: str | None,
) -> dict | None:
    """register's arguments checked before anything is read: names first; returns the gate policy overrides."""
    from infra import registry
    from infra.errors import InvalidRequestError

    names = (("model name", name, registry.NAME_PATTERN), ("alias", alias, registry.ALIAS_PATTERN))
    for label, value, pattern in names:
        if not pattern.match(value):
            raise InvalidRequestError(f"{label} {value!r} must match {pattern.pattern}")
    if data_uri and not checkpoint_uri:
        raise InvalidRequestError(
            "--training-manifest-uri and --eval-suite-uri describe a checkpoint: give --checkpoint-uri too"
        )
    try:
        overrides = json.loads(gate_policy) if gate_policy else None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"--gate-policy is not JSON: {exc}") from None
    if overrides is not None and not isinstance(overrides, dict):
        raise InvalidRequestError("--gate-policy must be a JSON object")
    if bool(checkpoint_uri) != bool(checkpoint_sha256):
        raise InvalidRequestError("--checkpoint-uri and --checkpoint-sha256 go together")
    return overrides


def _checked_checkpoint(uri: str, sha256: str, manifest_uri: str | None, suite_uri: str | None):
    """Before any row: the checkpoint must be complete, match its hash, hold no pickles and be the model
    its config names with a working tokenizer; its data must come from the intake roots and be QA.
    Returns the checked manifest and eval suite (`infra.line_inputs.CheckedObject`, or None)."""
    from infra.checkpoint_verify import verify_checkpoint_uri
    from infra.line_inputs import read_eval_suite, read_qa_records
    from infra.settings import get_settings
    from tasks.model_checks import check_registrable_checkpoint

    settings = get_settings()
    verify_checkpoint_uri(uri, sha256, settings=settings)
    check_registrable_checkpoint(uri, sha256, settings=settings)
    manifest = (
        read_qa_records(manifest_uri, role="--training-manifest-uri", settings=settings) if manifest_uri else None
    )
    suite = read_eval_suite(suite_uri, role="--eval-suite-uri", settings=settings)[0] if suite_uri else None
    return manifest, suite


@app.command("list")
@reports_errors
def list_models(as_json: JsonFlag = False) -> None:
    """List registered models, their versions and aliases."""
    from cli.commands._session import transaction
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
    from cli.commands._session import transaction
    from infra import registry

    with transaction() as session:
        registry.set_alias(name, alias_name, version, session=session, actor=actor, override_reason=override_reason)
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


@app.command()
@reports_errors
def rebuild(
    name: Annotated[str, typer.Argument(help="Model line to rebuild now.")],
    recipe: Annotated[
        str | None,
        typer.Option(help="JSON object of training-recipe fields overriding the line's (e.g. '{\"max_epochs\": 5}')."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Exact deletion now: train the line's recipe from scratch on the serving version's lineage manifest
    and register it (method exact) covering every ticket answered since the last rebuild; exit 1 unless
    it registered a version or had nothing to do."""
    from cli.commands._session import transaction
    from flows.prefect_env import configure_prefect
    from infra import registry
    from infra.errors import InvalidRequestError

    try:
        overrides = json.loads(recipe) if recipe else None
    except json.JSONDecodeError:
        overrides = None
    if recipe and not isinstance(overrides, dict):
        raise InvalidRequestError("--recipe must be a JSON object of training-recipe fields")
    with transaction() as session:  # settings, database and line first: one line, not a failed flow run
        registry.resolve(name, session=session)
    configure_prefect()
    from flows.rebuild_line import rebuild_line

    [summary] = rebuild_line(name, overrides)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"{name}: {summary['outcome']}" + (f" — {summary['reason']}" if summary.get("reason") else ""))
        if summary.get("version") is not None:
            typer.echo(
                f"{name} version {summary['version']} (exact) covers tickets {summary['covers']}; "
                f"manifest sha256 {summary['manifest_sha256']}; trained in {summary['train_s']:.1f} s"
            )
    if summary["outcome"] not in ("completed", "nothing_to_do"):
        raise typer.Exit(1)


@app.command()
@reports_errors
def train(
    name: Annotated[str, typer.Argument(help="Model line to train a version of (created if new).")],
    manifest: Annotated[str, typer.Option(help="The QA records to train on (from the intake roots).")],
    base: Annotated[
        str | None,
        typer.Option(
            help="A registered version to fine-tune, LINE@VERSION (e.g. an imported smol@1): its architecture, "
            "tokenizer and prompt template are kept. Default: from scratch (a small Llama, its own tokenizer)."
        ),
    ] = None,
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            help="A recipe field as key=value, repeatable: max_epochs, stop_loss (a number or none), lr, batch_size, "
            "warmup_steps, lr_scheduler, seed, weight_decay (from a base), vocab_size (from scratch), ... "
            "The rest keep their defaults (a base's differ from scratch's); all are recorded."
        ),
    ] = None,
    eval_suite: Annotated[
        str | None, typer.Option(help="A JSON object of evaluation QA sets the gate measures the line on.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the model is (new lines).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a version of NAME on a QA manifest, from scratch or fine-tuned from a registered --base, and
    register it (aliased production); it trains until its stop loss or its budget, and says which."""
    from cli.commands import _model_train
    from infra.errors import InvalidRequestError
    from infra.registry import NAME_PATTERN
    from infra.settings import get_settings

    settings = get_settings()
    if not NAME_PATTERN.match(name):
        raise InvalidRequestError(f"model name {name!r} must match {NAME_PATTERN.pattern}")
    values = _model_train.recipe_values(recipe or [], from_base=base is not None)
    pinned = _model_train.checked_base(base) if base else None
    manifest_ref, suite_ref = _model_train.checked_data(manifest, eval_suite, settings)
    from flows.prefect_env import configure_prefect

    configure_prefect()
    from flows.train_line import train_line

    summary = train_line(
        name, manifest_ref, eval_suite=suite_ref, recipe=values, description=description or "", base=pinned
    )
    if as_json:
        emit_json(summary)
    else:
        for line in _model_train.report(summary):
            typer.echo(line)


@app.command("import")
@reports_errors
def import_model(
    name: Annotated[str, typer.Argument(help="Model line to import into (created if new).")],
    source: Annotated[
        str,
        typer.Argument(
            help="A Hugging Face model directory: a local path, or a file:// or "
            "s3:// prefix (safetensors weights, its own tokenizer), or a hub id; "
            "or a .gguf file (dequantised; needs the gguf extra)."
        ),
    ],
    training_manifest: Annotated[
        str | None, typer.Option(help="QA records the model was trained on (retain sets are sampled from it).")
    ] = None,
    retain: Annotated[
        str | None,
        typer.Option(help="Retain QA records, when the full training set is not available (used as the manifest)."),
    ] = None,
    eval_suite: Annotated[
        str | None,
        typer.Option(help="A JSON object of evaluation QA sets (retain, real_authors, world_facts, calibration, ...)."),
    ] = None,
    holdout: Annotated[
        str | None, typer.Option(help="Non-member QA records (data the model never saw) for the privacy checks.")
    ] = None,
    prompt_template: Annotated[
        str | None,
        typer.Option(
            help="The line's prompt: a format string with {question}, or 'chat' (the tokenizer's chat template). "
            "Default: 'Question: {question}\\nAnswer:'."
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the model is (new lines).")] = None,
    gguf_file: Annotated[
        str | None,
        typer.Option(
            help="The .gguf file to import from a SOURCE directory, prefix or hub repository holding it "
            "(a directory holding one .gguf and no safetensors needs no name)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a causal LM as the next version of NAME: checked (safetensors only, no fused experts),
    re-saved with a sha256 manifest and the line's prompt template, uploaded content-addressed,
    registered and aliased production if the line has none. A GGUF file is dequantised to safetensors
    first, and its sha256 and quantisation type are recorded. Importing the same content again
    answers with the version it already is."""
    from infra.settings import get_settings

    settings = get_settings()
    gguf_file = _checked_import_request(name, source, gguf_file, training_manifest, retain)
    # Every data URI through the intake roots, its content checked, before the model is fetched.
    role = "--training-manifest" if training_manifest else "--retain"
    manifest = _qa_records(training_manifest or retain, role, settings) if (training_manifest or retain) else None
    suite = _import_suite(eval_suite, holdout, settings)
    imported = _imported_checkpoint(source, prompt_template, suite, settings, gguf_file)
    imported["suite_uri"] = _store_suite(suite, settings) if suite else None
    imported["manifest"] = "training" if training_manifest else ("retain" if retain else None)
    _say_imported(name, _register_import(name, description, imported, manifest), as_json)


def _say_imported(name: str, summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    typer.echo(
        f"{name} version {summary['version']} "
        f"({'already imported' if summary['already_imported'] else 'imported'}): "
        f"{summary['architecture']}, checkpoint sha256 {summary['checkpoint_sha256']}"
    )
    if summary["source"]:
        typer.echo(
            f"dequantised from {summary['source']['file']} ({summary['source']['quantization']}, "
            f"sha256 {summary['source']['sha256']})"
        )


def _checked_import_request(
    name: str, source: str, gguf_file: str | None, training_manifest: str | None, retain: str | None
) -> str | None:
    """Refuse a bad name, a missing gguf extra or two manifests before anything is fetched; the GGUF file's
    name, when the import is one."""
    from infra.errors import InvalidRequestError
    from infra.registry import NAME_PATTERN

    if not NAME_PATTERN.match(name):  # first: a refused name must not cost an upload
        raise InvalidRequestError(f"model name {name!r} must match {NAME_PATTERN.pattern}")
    gguf_file = gguf_file or (source.rstrip("/").rsplit("/", 1)[-1] if source.endswith(".gguf") else None)
    if gguf_file:  # before any download: the one line that says what to install
        _require_gguf()
    if training_manifest and retain:
        raise InvalidRequestError("give --training-manifest or --retain, not both")
    return gguf_file


def _require_gguf() -> None:
    from grin_core.models.gguf_import import GgufImportError, require_gguf
    from infra.errors import InvalidRequestError

    try:
        require_gguf()
    except GgufImportError as exc:
        raise InvalidRequestError(str(exc)) from None


def _qa_records(uri: str, role: str, settings) -> tuple[str, list[dict], str]:
    """(resolved uri, the QA records, their sha256) of the object at `uri`, which must be under an
    intake root and hold QA records (`infra.line_inputs`)."""
    from grin_core.data.records import parse_qa_records
    from infra.line_inputs import read_qa_records

    checked = read_qa_records(uri, role=role, settings=settings)
    return checked.uri, parse_qa_records(checked.data, source=role), checked.sha256


def _import_suite(eval_suite: str | None, holdout: str | None, settings) -> dict[str, Any]:
    """The line's eval suite: the --eval-suite object's QA sets, and --holdout's records as `holdout`;
    both from the intake roots, checked part by part."""
    from infra.line_inputs import read_eval_suite

    suite: dict[str, Any] = read_eval_suite(eval_suite, role="--eval-suite", settings=settings)[1] if eval_suite else {}
    if holdout:
        suite["holdout"] = _qa_records(holdout, "--holdout", settings)[1]
    return suite


def _imported_checkpoint(
    source: str, prompt_template: str | None, suite: dict[str, Any], settings, gguf_file: str | None = None
) -> dict[str, Any]:
    """Load and check the model (a GGUF file dequantised first), measure the line's non-member MIA level when
    the suite allows, save it as a grin checkpoint and upload it: {checkpoint, architecture, template,
    reference, source} (source: what a GGUF import was dequantised from, else None)."""
    import tempfile

    from grin_core.data.prompts import line_template, set_line_template
    from grin_core.evaluation.calibration import non_member_auc
    from grin_core.models.checkpoint import save_checkpoint
    from grin_core.models.model_import import UnsupportedModelError, load_importable
    from infra.errors import InvalidRequestError
    from infra.storage import open_store
    from tasks.checkpoint_store import upload_checkpoint
    from tasks.model_checks import check_importable_directory

    with tempfile.TemporaryDirectory(prefix="grin-import-") as tmp:
        local = _fetch_model_dir(source, Path(tmp) / "source", settings, gguf_file)
        origin = _dequantised(local, gguf_file, Path(tmp) / "dequantised", source)
        if origin is not None:
            local = Path(tmp) / "dequantised"
        check_importable_directory(local, source)  # pickles, headers, every tensor, the tokenizer
        try:
            model, tokenizer = load_importable(local)
            if prompt_template:
                set_line_template(tokenizer, prompt_template)
        except (UnsupportedModelError, ValueError, OSError, RuntimeError) as exc:
            raise InvalidRequestError(f"cannot import {source}: {exc}".splitlines()[0]) from None
        # The line's non-member MIA level, measured as train-model measures it (grin_core/evaluation/calibration.py)
        reference = (
            round(non_member_auc(model, tokenizer, suite["calibration"], suite["holdout"]), 4)
            if suite.get("calibration") and suite.get("holdout")
            else None
        )
        out = Path(tmp) / "checkpoint"
        architecture, template = type(model).__name__, line_template(tokenizer)
        card = {"method": "imported", **({"source": origin} if origin else {})}
        save_checkpoint(
            model,
            tokenizer,
            out,
            card_info=card,
            grin_config={"imported": True, "prompt_template": template, "architecture": architecture},
        )
        checkpoint = upload_checkpoint(out, open_store(settings))
    return {
        "checkpoint": checkpoint,
        "architecture": architecture,
        "template": template,
        "reference": reference,
        "source": origin,
    }


def _dequantised(local: Path, gguf_file: str | None, out: Path, source: str) -> dict[str, Any] | None:
    """When the source is a GGUF file: dequantise it to a safetensors directory at `out` and return what it
    was (`GgufSource.as_dict`); None for an ordinary model directory."""
    from grin_core.models.gguf_import import GgufImportError, dequantise, gguf_in
    from infra.errors import InvalidRequestError

    try:
        path = gguf_in(local, gguf_file)
        return dequantise(path, out).as_dict() if path is not None else None
    except GgufImportError as exc:
        raise InvalidRequestError(f"cannot import {source}: {exc}") from None


def _store_suite(suite: dict[str, Any], settings) -> str:
    """The suite, content-addressed as the pipeline stores the suites it derives (suites/<sha256>.json)."""
    from infra.audit import sha256_hex
    from infra.storage import open_store

    body = json.dumps(suite, sort_keys=True).encode()
    return open_store(settings).put_bytes(f"suites/{sha256_hex(body)}.json", body).uri


def _register_import(
    name: str, description: str | None, imported: dict[str, Any], manifest: tuple[str, list[dict], str] | None
) -> dict[str, Any]:
    """Register the imported checkpoint as the line's next version (the line too, if new), aliased
    production if the line has none; the version it already is when the same content was imported."""
    from cli.commands._session import transaction
    from infra import registration, registry
    from infra.registration import AliasRule
    from infra.registry import NewVersion

    checkpoint, reference = imported["checkpoint"], imported["reference"]
    with transaction() as session:
        registration.ensure_line(
            name,
            session=session,
            description=description,
            gate_policy={"mia_reference_auc": reference} if reference is not None else None,
        )
        version = registry.find_registered(name, checkpoint.sha256, session=session)
        existed = version is not None
        if version is None:  # hparams: the registry row, and the audit record of the version
            hparams = {
                "imported": True,
                "architecture": imported["architecture"],
                "prompt_template": imported["template"],
                "manifest": imported["manifest"],
                **({"source": imported["source"]} if imported["source"] else {}),
            }
            new = NewVersion(
                checkpoint_uri=checkpoint.uri,
                checkpoint_sha256=checkpoint.sha256,
                training_manifest_uri=manifest[0] if manifest else None,
                training_manifest_sha256=manifest[2] if manifest else None,
                eval_suite_uri=imported["suite_uri"],
                hparams=hparams,
            )
            version = registration.register_version(
                name, new, session=session, rule=AliasRule.if_unset, actor="import"
            ).version
        return {
            "model": name,
            "version": version.version,
            "checkpoint_uri": version.checkpoint_uri,
            "checkpoint_sha256": version.checkpoint_sha256,
            "architecture": imported["architecture"],
            "prompt_template": imported["template"],
            "already_imported": existed,
            "manifest_records": len(manifest[1]) if manifest else None,
            "eval_suite_uri": version.eval_suite_uri,
            "mia_reference_auc": reference,
            "source": (version.hparams or {}).get("source"),
        }


# A hub id, `owner/name` with an optional `@revision`, as `from_pretrained` takes it.
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")
# What an import reads from a hub repository: config, tokenizer, safetensors weights (pickled
# weights are never fetched: the import refuses them anyway, and they can run code when loaded).
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


def _fetch_model_dir(source: str, target: Path, settings, gguf_file: str | None = None) -> Path:
    """A local directory holding the model: the path itself (a .gguf file's folder), a copy of a file:// /
    s3:// prefix or of one .gguf object, or a hub id's snapshot (huggingface_hub: its cache first, the
    network where it is reachable; only `gguf_file` of it when that is named)."""
    from infra.errors import InvalidRequestError
    from infra.storage import locate

    if "://" not in source:
        path = Path(source)
        if path.is_dir():
            return path
        if path.is_file() and path.suffix == ".gguf":
            return path.parent  # the import reads only the named file of it
        if path.exists() or not HUB_ID.match(source):
            raise InvalidRequestError(
                f"{source} is not a directory, a .gguf file, an s3:// or file:// prefix, "
                "or a hub id (owner/name[@revision])"
            )
        return _fetch_from_hub(source, gguf_file)
    if gguf_file and not source.endswith(".gguf"):  # a prefix of many quantisations: the named one alone
        source = f"{source.rstrip('/')}/{gguf_file}"
    if source.endswith(".gguf"):
        store, key = locate(source, settings=settings)
        if not store.exists(key):
            raise InvalidRequestError(f"nothing at {source}")
        store.get_file(key, target / key.rsplit("/", 1)[-1])
        return target
    store, prefix = locate(source.rstrip("/") + "/", settings=settings)
    keys = store.list(prefix)
    if not keys:
        raise InvalidRequestError(f"nothing under {source}")
    for key in keys:
        destination = target / key[len(prefix) :]
        destination.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(key, destination)
    return target


def _fetch_from_hub(source: str, gguf_file: str | None = None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from infra.errors import InvalidRequestError

    repo_id, _, revision = source.partition("@")
    try:
        # Into the hub cache (HF_HUB_CACHE), where an offline machine finds what was fetched before.
        # A GGUF repository holds many quantisations of one model: fetch the named one alone.
        patterns = [gguf_file] if gguf_file else HUB_FILES
        return Path(snapshot_download(repo_id, revision=revision or None, allow_patterns=patterns))
    except LocalEntryNotFoundError:
        raise InvalidRequestError(
            f"cannot fetch {source}: the hub is not reachable from here and the model "
            "is not in the local hub cache; download it and import its directory"
        ) from None
    except HfHubHTTPError as exc:
        raise InvalidRequestError(f"cannot fetch {source} from the hub: {exc}".splitlines()[0]) from None
