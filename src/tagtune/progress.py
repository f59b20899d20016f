"""Progress bars: shown on an interactive terminal of the local main process, silent otherwise."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or allow) every progress bar of this process (``--quiet``)."""
    global _quiet
    _quiet = quiet


def _is_local_main_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0"


def bars_enabled() -> bool:
    """Whether progress bars show: not quiet, on a terminal (or ``TAGTUNE_PROGRESS=1``), local main process."""
    if os.environ.get("TAGTUNE_PROGRESS") == "1":  # force bars on, e.g. in logs a person tails
        return not _quiet
    return not _quiet and sys.stderr.isatty() and _is_local_main_process()


def progress_bar(**kwargs: Any) -> tqdm:
    """A tqdm bar (rate, and ETA when ``total`` is known) that shows only when :func:`bars_enabled`."""
    return tqdm(disable=not bars_enabled(), dynamic_ncols=True, mininterval=0.5, **kwargs)
