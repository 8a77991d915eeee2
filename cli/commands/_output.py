"""How every grin command reports: JSON for scripts, rich tables for people, one line for errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def emit_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console().print(table)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and give the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn errors a user can act on (bad input, configuration, the database, the store, the file system)
    into one line on stderr and exit status 1; bugs keep their traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import BotoCoreError, ClientError
        from pydantic import ValidationError
        from pydantic_settings import SettingsError
        from sqlalchemy.exc import SQLAlchemyError

        from infra.errors import GrinError, one_line

        try:
            return command(*args, **kwargs)
        except GrinError as exc:
            raise fail(str(exc)) from None
        except ValidationError as exc:
            raise fail(f"invalid {exc.title}: {one_line(exc)}") from None
        except SettingsError as exc:  # a GRIN_* variable pydantic-settings could not decode
            raise fail(f"configuration error: {str(exc).splitlines()[0]}") from None
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            hint = " (run `grin db upgrade`)" if "no such table" in detail or "does not exist" in detail else ""
            raise fail(f"database error: {detail}{hint}") from None
        except (BotoCoreError, ClientError) as exc:
            raise fail(f"storage error: {exc}") from None
        except OSError as exc:  # the state directory, a local store or a file argument the OS refuses
            where = f" {exc.filename}" if exc.filename else ""
            raise fail(f"cannot use{where}: {exc.strerror or exc}") from None

    return wrapper
