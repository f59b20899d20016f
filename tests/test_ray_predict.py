"""``--engine ray`` (tagtune.ray_predict): worker sizing, the CLI's options and its one-line error without
Ray; the tests that start Ray are marked ``integration`` (a local instance, 2 workers of 1 thread): output
equal to single-process ``tagtune predict`` record for record over a folder of every input kind with bad
records and a 20,000-word document, and a job killed midway that a rerun completes without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tagtune
from conftest import run_console
from tagtune.errors import ConfigError
from tagtune.predict import PredictConfig, pretokenize
from tagtune.ray_predict import RayConfig, size_workers
from tagtune.shards import ShardConfig
from test_shards import CONLL, _shard_rows, _single_process, _strip

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def test_size_workers_never_oversubscribes() -> None:
    assert size_workers(2, 2, 1) == (2, 1)
    assert size_workers(8, None, None, files=1) == (1, 8)
    with pytest.raises(ConfigError, match="needs 4 CPUs and the Ray cluster has 2"):
        size_workers(2, 2, 2)


def test_engine_ray_without_ray_is_one_line(tiny_ner_dir, tmp_path, monkeypatch, capsys) -> None:
    from tagtune.cli import invoke

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    (tmp_path / "a.txt").write_text("Paris\n")
    code = run_console(invoke, ["predict", str(tiny_ner_dir), str(tmp_path / "a.txt"), "--engine", "ray",
                                "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == 'error: --engine ray needs Ray Data, which is not installed; pip install "tagtune[ray]"'


def test_engine_options_are_checked(tiny_ner_dir, tmp_path) -> None:
    from tagtune.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), "--text", "x", "--output_dir", str(tmp_path)])
    assert result.exit_code == 2 and "--output_dir is for --engine ray" in result.output
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), "--text", "x", "--engine", "spark"])
    assert result.exit_code == 2 and "--engine 'spark' is not one of local, ray" in result.output
    with pytest.raises(ConfigError, match="--output_format 'conll' is not one of parquet, jsonl"):
        ShardConfig(tmp_path, "conll")
    with pytest.raises(ConfigError, match="--num_workers must be at least 1"):
        RayConfig(num_workers=0)
    pytest.importorskip("ray")
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), str(tmp_path), "--engine", "ray"])
    assert result.exit_code == 2 and "pass --output_dir FOLDER" in result.output


# ---------------------------------------------------------------------- Ray itself (integration)


def _corpus(folder: Path) -> dict[str, bytes]:
    """Inputs of every kind, bad records included; a 20,000-word document; and files enough to kill midway."""
    folder.mkdir()
    words = "angela merkel visited paris and new york city with john smith of the eu".split()
    long_document = " ".join(words[i % len(words)] for i in range(20_000))
    assert len(pretokenize(long_document)) == 20_000
    files = {
        "long.txt": long_document.encode() + b"\n",
        "docs.txt": b"Angela Merkel visited Paris.\n\xff\xfe broken\nnew york city\n",
        "records.jsonl": (json.dumps({"id": "a", "text": "Peter in Paris"}) + "\n" + json.dumps({"body": "x"}) + "\n"
                          + json.dumps({"text": "x " * 150_000}) + "\n{broken\n"
                          + json.dumps({"id": "b", "text": "john smith"}) + "\n").encode(),
        "words.conll": CONLL,
    }
    for k in range(6):
        files[f"batch{k}.txt"] = "".join(f"{words[(i + k) % 14]} {words[i % 14]} {i}\n" for i in range(1500)).encode()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    table = pa.table({"text": ["paris london", None, "angela merkel"], "id": ["p1", "p2", "p3"]})
    pq.write_table(table, folder / "table.parquet")
    return files


def _expected(tiny_ner_dir: Path, folder: Path, files: dict[str, bytes], tmp_path: Path) -> dict[str, list[dict]]:
    """Single-process predictions of each file, its bad records removed by hand."""
    clean = tmp_path / "clean"
    clean.mkdir()
    fixed = {"docs.txt": files["docs.txt"].replace(b"\xff\xfe broken\n", b""),
             "records.jsonl": b"".join(line + b"\n" for line in files["records.jsonl"].splitlines()
                                       if line.startswith(b'{"id"')),
             "words.conll": CONLL.replace(b"Peter B-PER\nBlack\xff O\n\n", b""),
             "table.parquet": b'{"id": "p1", "text": "paris london"}\n{"id": "p3", "text": "angela merkel"}\n'}
    expected = {}
    for name in [*files, "table.parquet"]:
        path = clean / (name if name != "table.parquet" else "table.jsonl")
        path.write_bytes(fixed.get(name, files.get(name, b"")))
        expected[name] = _single_process(tiny_ner_dir, path, tmp_path)
    return expected


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL the job: the driver and every process of its session (Ray's workers have process groups
    of their own), as a scheduler kills a job."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, session = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if session == process.pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _ray_command(tiny_ner_dir: Path, folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from tagtune.cli import main; main()", "predict", str(tiny_ner_dir), str(folder),
            "--engine", "ray", "--num_workers", "2", "--threads", "1", "--output_dir", str(out), "--max_chars", "200000",
            "--precision", "fp32", "--quiet"]


@pytest.mark.integration
def test_ray_engine_equals_single_process_and_resumes_after_a_kill(tiny_ner_dir, tmp_path) -> None:
    pytest.importorskip("ray")
    folder, out = tmp_path / "in", tmp_path / "out"
    files = _corpus(folder)
    names = sorted([*files, "table.parquet"])
    command = _ray_command(tiny_ner_dir, folder, out)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Killed (the driver, Ray and its workers) as soon as the first shard is complete.
    process = subprocess.Popen(command, start_new_session=True, env=env, stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "first.log", "w"))  # noqa: SIM115
    deadline = time.monotonic() + 600
    while not list(out.glob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_session(process)
    done_before = {p.name for p in out.glob("*.parquet")}
    assert done_before and len(done_before) < len(names), (tmp_path / "first.log").read_text()
    for shard in done_before:  # a shard's file exists only complete, with its meta
        assert (out / "_shards" / (shard.removesuffix(".parquet") + ".json")).is_file()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert f"{len(done_before)} complete shards skipped" in summary and "words/s" in summary, summary
    assert sorted(p.name for p in out.glob("*.parquet")) == [f"{name}.parquet" for name in names]
    assert not list(out.rglob(".*.tmp"))

    expected = _expected(tiny_ner_dir, folder, files, tmp_path)
    for name in names:
        rows = _shard_rows(out / f"{name}.parquet")
        assert _strip(rows) == expected[name], name
        assert len({row["record"] for row in rows}) == len(rows)  # no duplicates
    long_row, = _shard_rows(out / "long.txt.parquet")
    assert len(pretokenize(long_row["text"])) == 20_000 and long_row["entities"]

    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted((e["file"], e["record"]) for e in errors) == [
        ("docs.txt", 2), ("records.jsonl", 2), ("records.jsonl", 3), ("records.jsonl", 4), ("table.parquet", 2),
        ("words.conll", 7)]
    oversized = next(e for e in errors if e["record"] == 3)
    assert oversized["reason"] == "the document has 300000 characters; the limit is --max_chars 200000"
    totals = json.loads((out / "summary.json").read_text())
    assert totals["shards"] == len(names) and totals["errors"] == 6

    # Everything complete: a third run tags nothing.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and f"{len(names)} complete shards skipped" in result.stderr


@pytest.mark.integration
def test_tag_dataset_adds_entities_tags_and_errors(tiny_ner_dir) -> None:
    ray = pytest.importorskip("ray")
    from tagtune.ray_predict import tag_dataset

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        texts = ["Angela Merkel visited Paris.", None, "x " * 50, "new york city"]
        table = pa.table({"text": pa.array(texts, pa.string()), "n": [0, 1, 2, 3]})
        dataset = ray.data.from_arrow(table).repartition(2)  # a stage that needs a CPU before the workers
        tagged = tag_dataset(dataset, tiny_ner_dir, config=RayConfig(num_workers=2, threads=1, max_chars=50),
                             predict=PredictConfig(precision="fp32"), batch_size=2)
        rows = sorted(tagged.take_all(), key=lambda row: row["n"])
        words = ray.data.from_items([{"tokens": ["EU", "rejects", "German", "call"]}])
        word_rows = tag_dataset(words, tiny_ner_dir, column="tokens", config=RayConfig(num_workers=1, threads=1),
                                predict=PredictConfig(precision="fp32")).take_all()
    finally:
        ray.shutdown()
    tagger = tagtune.load(tiny_ner_dir, precision="fp32")
    for row in (rows[0], rows[3]):
        assert [{k: v for k, v in e.items() if k != "review"} for e in row["entities"]] == \
            [e.as_dict() for e in tagger(row["text"])]
        assert row["error"] is None and row["tags"] is None
    assert rows[1]["error"] == "'text' holds NoneType, not a string or a list of words"
    assert rows[2]["error"] == "the document has 100 characters; the limit is --max_chars 50"
    assert list(word_rows[0]["tags"]) == next(tagger.predict_words([["EU", "rejects", "German", "call"]])).tags
