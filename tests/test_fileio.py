"""Atomic writes: whole files or none, with the permissions a plain ``open()`` gives under the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagtune.fileio import atomic_open, atomic_write_text, file_mode, publish_dir, publish_files


@pytest.fixture(params=[0o022, 0o027])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_umask_mode(umask: int, tmp_path: Path) -> None:
    expected = 0o666 & ~umask
    assert file_mode() == expected
    atomic_write_text(tmp_path / "a.txt", "text\n")
    with atomic_open(tmp_path / "sub" / "b.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert {name: oct(mode(tmp_path / name)) for name in ("a.txt", "sub/b.bin")} == \
        {"a.txt": oct(expected), "sub/b.bin": oct(expected)}


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_published_files_get_the_umask_mode_even_when_written_owner_only(umask: int, tmp_path: Path) -> None:
    """safetensors writes weights through a private temporary file (mode 0600)."""
    import torch
    from safetensors.torch import save_file

    for name in ("dir-staging", "files-staging"):
        (tmp_path / name / "nested").mkdir(parents=True)
        save_file({"w": torch.zeros(2)}, str(tmp_path / name / "model.safetensors"))
        (tmp_path / name / "nested" / "private.json").write_text("{}")
        os.chmod(tmp_path / name / "nested" / "private.json", 0o600)
    publish_dir(tmp_path / "dir-staging", tmp_path / "checkpoint-1")
    publish_files(tmp_path / "files-staging", tmp_path / "model", last=("model.safetensors",))
    published = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(published) == 4
    assert {str(p.relative_to(tmp_path)): oct(mode(p)) for p in published if mode(p) != 0o666 & ~umask} == {}
