"""docs/ARCHITECTURE.md names every module of the package with its one job: a module added without a
line there fails here, and so does a line for a module that no longer exists."""

from __future__ import annotations

import re

from conftest import REPO

SRC = REPO / "src" / "tagtune"
DOC = REPO / "docs" / "ARCHITECTURE.md"


def modules() -> set[str]:
    """Module paths relative to src/tagtune, as the document writes them (``cli/train_cmd.py``)."""
    return {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")} - {"__init__.py"}


def documented() -> set[str]:
    """The modules in the first column of the document's module tables."""
    return set(re.findall(r"^\| `([\w/]+\.py)` \|", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))


def test_every_module_has_a_line() -> None:
    missing = sorted(modules() - documented())
    assert not missing, f"add a line to docs/ARCHITECTURE.md for: {', '.join(missing)}"


def test_no_line_for_a_module_that_is_gone() -> None:
    gone = sorted(documented() - modules())
    assert not gone, f"docs/ARCHITECTURE.md lists modules that do not exist: {', '.join(gone)}"
