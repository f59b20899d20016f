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


def progress_bar(**kwargs: Any) -> tqdm:
    """A tqdm bar that is disabled when quiet, not on a terminal, or not the local main process."""
    disable = _quiet or not sys.stderr.isatty() or not _is_local_main_process()
    if os.environ.get("TAGTUNE_PROGRESS") == "1":  # force bars on, e.g. in logs a person tails
        disable = _quiet
    return tqdm(disable=disable, dynamic_ncols=True, mininterval=0.5, **kwargs)
