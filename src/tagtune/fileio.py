"""Atomic writes: a reader sees the old file (or directory) or the new one, never half of one.

Every file this package writes atomically gets the permissions a plain ``open()`` would give it,
``0o666`` less the process umask: temporary files (``tempfile.mkstemp``, and ``safetensors``, which
writes through one) are owner-only, and a model directory must stay readable by a service that runs as
another user.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process umask (``0o644`` under ``022``)."""
    umask = os.umask(0o077)  # the only portable way to read it; owner-only meanwhile, never wider
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error it is
    flushed to disk and renamed onto ``path`` with :func:`file_mode` permissions, else removed.

    Args:
        path: The file to write (its directory is created).
        mode: ``"w"`` (UTF-8 text, ``\\n`` newlines) or ``"wb"``.
    """
    assert mode in ("w", "wb"), mode
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        text = {} if mode == "wb" else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    with atomic_open(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def set_file_modes(path: str | os.PathLike) -> None:
    """Give every file under ``path`` the :func:`file_mode` permissions before it is published."""
    mode = file_mode()
    for root, _dirs, files in os.walk(path):
        for name in files:
            os.chmod(os.path.join(root, name), mode)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flush every file under ``path``, and the directories themselves, to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            _fsync_path(os.path.join(root, name))
        _fsync_path(root)


def _fsync_path(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync directories; the rename is still atomic
    finally:
        os.close(fd)


def publish_dir(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a completely written directory to ``final`` with a rename, so ``final`` is whole or absent.

    An existing ``final`` (the same checkpoint saved again) is first renamed aside to ``.old-<name>``
    and removed afterwards; a crash in between leaves no ``final`` and older copies intact.
    """
    staging, final = Path(staging), Path(final)
    set_file_modes(staging)
    fsync_tree(staging)
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    _fsync_path(final.parent)


def publish_files(staging: str | os.PathLike, target: str | os.PathLike, last: Iterable[str]) -> None:
    """Move every file of ``staging`` into ``target``, one rename each, the ``last`` ones (weights) last.

    The old ``last`` files are removed first, so until the new ones arrive the directory holds no
    weights and no loader reads new settings with old weights. ``staging`` is removed at the end.
    """
    staging, target = Path(staging), Path(target)
    set_file_modes(staging)
    fsync_tree(staging)
    target.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    is_last = [any(fnmatch.fnmatch(p.name, pattern) for pattern in last) for p in files]
    for path, late in zip(files, is_last):
        if late:
            (target / path.relative_to(staging)).unlink(missing_ok=True)
    _fsync_path(target)
    for path, _late in sorted(zip(files, is_last), key=lambda pair: pair[1]):
        destination = target / path.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, destination)
    _fsync_path(target)
    shutil.rmtree(staging, ignore_errors=True)
