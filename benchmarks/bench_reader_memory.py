"""Peak memory and time of the streaming readers on a generated file of any size (1 GB by default).

    python benchmarks/bench_reader_memory.py --size_gb 1 --formats conll jsonl --dir /tmp

Each format is generated (15-word sentences), then read in a fresh process that iterates the reader
without keeping the examples; the peak resident memory of that process is reported next to the
file size (``VmHWM``, Linux). The file is deleted afterwards. tests/test_readers_memory.py runs the
same at 60 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

READ = r'''
import sys
from pathlib import Path
from tagtune.config import DataConfig
from tagtune.readers_columns import read_conll
from tagtune.readers_records import RecordConverter, read_jsonl
path, fmt = Path(sys.argv[1]), sys.argv[2]
cfg = DataConfig()
records = RecordConverter(cfg, lambda column: ([], ""))
stream = read_conll(path, cfg) if fmt == "conll" else read_jsonl(path, records)
words = sum(len(example.tokens) for example in stream)
peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
print(words, int(peak.split()[1]) / 1024)  # VmHWM: this process's own peak resident memory
'''


def block(fmt: str, sentences: int = 2000) -> str:
    if fmt == "conll":
        return "".join("".join(f"w{i}x{j} NNP B-NP {'B-PER' if j == 0 else 'O'}\n" for j in range(15)) + "\n"
                       for i in range(sentences))
    return "".join(json.dumps({"id": str(i), "tokens": [f"w{i}x{j}" for j in range(15)],
                               "ner_tags": ["B-PER"] + ["O"] * 14}) + "\n" for i in range(sentences))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size_gb", type=float, default=1.0)
    parser.add_argument("--formats", nargs="+", default=["conll", "jsonl"], choices=["conll", "jsonl"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    for fmt in args.formats:
        path = args.dir / f"tagtune-bench-reader.{fmt}"
        text = block(fmt)
        copies = max(1, int(args.size_gb * (1 << 30)) // len(text))
        with path.open("w", encoding="utf-8") as handle:
            for _ in range(copies):
                handle.write(text)
        try:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", READ, str(path), fmt], capture_output=True,
                                  text=True, check=True)
            seconds = time.perf_counter() - start
            words_text, peak_text = done.stdout.split()
            words, peak_mb = int(words_text), float(peak_text)
            assert words == copies * 2000 * 15, words
            print(json.dumps({"format": fmt, "file_mb": round(path.stat().st_size / (1 << 20)),
                              "words": words, "seconds": round(seconds, 1),
                              "peak_rss_mb": round(peak_mb, 1)}),
                  flush=True)
        finally:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
