"""The `grin` command. It only assembles the sub-commands that live in `cli/commands/`.

Each public module there defines `app = typer.Typer(help=...)` and is mounted under its
module name (`cli/commands/ticket.py` → `grin ticket …`); a one-command module gives its
Typer a callback with `invoke_without_command=True`. Modules import heavy libraries (torch,
prefect, the database and S3 clients) inside their commands, never at the top, so that
`grin --help` stays fast; tests/cli/test_cli_app.py holds every module to that.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from cli import commands

app = typer.Typer(
    name="grin",
    help="Deletion requests against language models: tickets, registry, audit trail and the unlearning pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

for _module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
    if not _module.name.startswith("_"):
        app.add_typer(importlib.import_module(f"{commands.__name__}.{_module.name}").app, name=_module.name)
