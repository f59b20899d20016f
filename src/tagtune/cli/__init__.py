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

VERBS = ("train", "evaluate", "predict", "export", "serve", "inspect")

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
    except (TagtuneError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
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


def main() -> None:
    """Console-script entry point."""
    run_guarded(app)
