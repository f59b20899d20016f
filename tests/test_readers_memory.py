"""The line-based readers stream: reading a large file costs memory for one sentence, not for the file.

Each reader runs in a fresh subprocess over a generated file and reports the growth of its peak
resident memory (``VmHWM``) while iterating. The JSON-array reader, which must parse the whole
document, is the control: its growth exceeds its file's size, so the measurement can see a whole-file
load. A 1 GB CoNLL file was measured by hand the same way (benchmarks/RESULTS.md, "Reliability").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MB = 1 << 20

MEASURE = r'''
import json, resource, sys
from pathlib import Path


def peak_mb():
    # VmHWM is the peak of this process's own memory; ru_maxrss would also count the parent's
    # resident memory at fork time, which hides everything when the parent (pytest) is larger.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


from tagtune.config import DataConfig
from tagtune.readers_columns import read_conll, read_conllu
from tagtune.readers_records import RecordConverter, read_csv, read_json, read_jsonl

path, fmt = Path(sys.argv[1]), sys.argv[2]
cfg = DataConfig()
conv = RecordConverter(cfg, lambda column: (["O", "B-PER"], "test"), cells_are_text=fmt == "csv")
stream = {"conll": lambda: read_conll(path, cfg), "conllu": lambda: read_conllu(path, cfg),
          "jsonl": lambda: read_jsonl(path, conv), "csv": lambda: read_csv(path, conv),
          "json": lambda: read_json(path, conv)}[fmt]()
before = peak_mb()
examples = words = 0
for example in stream:
    examples += 1
    words += len(example.tokens)
print(json.dumps({"examples": examples, "words": words, "growth_mb": peak_mb() - before}))
'''

SENTENCE = 15  # words per generated sentence


def _write_repeated(path: Path, block: str, size: int) -> int:
    """Write ``block`` until the file holds about ``size`` bytes; return how many blocks."""
    copies = max(1, size // len(block.encode()))
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(copies):
            handle.write(block)
    return copies


def _conll_block(n: int) -> str:
    return "".join("".join(f"w{i}x{j} NNP B-NP {'B-PER' if j == 0 else 'O'}\n" for j in range(SENTENCE))
                   + "\n" for i in range(n))


def _conllu_block(n: int) -> str:
    return "".join(f"# sent_id = s{i}\n" + "".join(f"{j + 1}\tw{j}\tw\tNOUN\tNN\t_\t0\tdep\t_\t_\n"
                                                   for j in range(SENTENCE)) + "\n" for i in range(n))


def _record(i: int) -> dict:
    return {"id": str(i), "tokens": [f"w{i}x{j}" for j in range(SENTENCE)],
            "ner_tags": ["B-PER"] + ["O"] * (SENTENCE - 1)}


def _jsonl_block(n: int) -> str:
    return "".join(json.dumps(_record(i)) + "\n" for i in range(n))


def _csv_block(n: int) -> str:
    return "".join(f'"{" ".join(r["tokens"])}","{" ".join(r["ner_tags"])}"\n' for r in map(_record, range(n)))


def _measure(path: Path, fmt: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), fmt], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("fmt, size_mb", [("conll", 60), ("jsonl", 60), ("conllu", 15), ("csv", 15)])
def test_reader_streams_in_bounded_memory(tmp_path: Path, fmt: str, size_mb: int) -> None:
    path = tmp_path / f"big.{fmt}"
    block_sentences = 2000
    if fmt == "csv":
        path.write_text("tokens,ner_tags\n")
        with path.open("a", encoding="utf-8") as handle:
            block = _csv_block(block_sentences)
            copies = max(1, size_mb * MB // len(block))
            for _ in range(copies):
                handle.write(block)
    else:
        block = {"conll": _conll_block, "conllu": _conllu_block, "jsonl": _jsonl_block}[fmt](block_sentences)
        copies = _write_repeated(path, block, size_mb * MB)
    size = path.stat().st_size
    assert size >= 0.9 * size_mb * MB
    measured = _measure(path, fmt)
    assert measured["examples"] == copies * block_sentences
    assert measured["words"] == copies * block_sentences * SENTENCE
    # One sentence at a time: far below the file size (a whole-file load costs several times the size).
    assert measured["growth_mb"] < 16, (measured, size / MB)


def test_measurement_sees_a_whole_file_load(tmp_path: Path) -> None:
    """The control: a JSON array must be parsed whole, and the same measurement shows it."""
    path = tmp_path / "big.json"
    records = [_record(i) for i in range(2000)]
    text = json.dumps(records)
    copies = 12 * MB // len(text)
    path.write_text("[" + ", ".join([text[1:-1]] * copies) + "]")
    measured = _measure(path, "json")
    assert measured["examples"] == copies * 2000
    assert measured["growth_mb"] > path.stat().st_size / MB, measured
