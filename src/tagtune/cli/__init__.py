"""The ``tagtune`` command line: one thin module per verb, each registering itself on ``app``.

Library code raises :class:`~tagtune.errors.TagtuneError`; here it becomes one line on stderr and exit
status 2 (``--verbose`` or ``TAGTUNE_VERBOSE=1`` shows the traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from tagtune.errors import TagtuneError

VERBS = ("train", "evaluate", "predict", "export", "serve", "inspect", "distill")

app = typer.Typer(
    name="tagtune", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Token classification (NER, POS, chunking): train, evaluate, predict, export, serve, inspect.",
)


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on one line and exit (the only place tagtune exits)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def run_guarded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``function``; user errors become one line on stderr and exit status 2."""
    verbose = os.environ.get("TAGTUNE_VERBOSE") == "1" or "--verbose" in sys.argv
    setup_logging()
    try:
        return function(*args, **kwargs)
    except (TagtuneError, OSError) as error:  # OSError: missing or unreadable paths, full disk, ...
        if verbose:
            raise
        typer.echo(f"error: {one_line(error)}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


def setup_logging(level: int = logging.INFO) -> None:
    """Log tagtune's messages on stderr from the main process only."""
    root = logging.getLogger("tagtune")
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    is_main = os.environ.get("RANK", "0") == "0"
    root.setLevel(level if is_main else logging.ERROR)


def _register_verbs() -> None:
    for verb in VERBS:
        name = f"tagtune.cli.{verb}_cmd"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


_register_verbs()


def invoke(args: list[str] | None = None) -> None:
    """Run the ``tagtune`` app; a bad option or argument is a one-line :class:`ConfigError`.

    click would print the usage block and a boxed message; tagtune's promise is one line, exit 2.
    """
    from tagtune.errors import ConfigError

    click_errors = _click_exceptions()
    try:
        code = app(args=args, prog_name="tagtune", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:
        typer.echo(error.format_message())
        sys.exit(error.exit_code)
    except click_errors.ClickException as error:
        ctx = getattr(error, "ctx", None) if isinstance(error, click_errors.UsageError) else None
        where, hint = (f"{ctx.command_path}: ", f"; see '{ctx.command_path} --help'") if ctx else ("", "")
        raise ConfigError(f"{where}{error.format_message().rstrip('.')}{hint}") from None
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _click_exceptions():
    """click's exception module as typer uses it (typer 0.2x carries its own copy of click)."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def main() -> None:
    """Console-script entry point."""
    run_guarded(invoke)
