"""Corpus-scale prediction: single-process ``tagtune predict`` against ``--engine ray`` with 1 and 2 workers.

One run tags the same N CoNLL-2003 sentences (cycled from the training file; plain text, one sentence a
line, words joined by spaces), split into ``--files`` input files, with each variant in its own process:

- ``single``: ``tagtune predict MODEL FILES -o OUT --threads T``;
- ``rayK``: ``tagtune predict MODEL FOLDER --engine ray --num_workers K --threads T --output_dir OUT``
  on a fresh local Ray instance (this machine).

Reported per variant: wall seconds of the whole command; start-up (single: the same command on one
sentence, i.e. imports and model load; Ray: ``ray.init``, then the workers' model loads, both read from
the run's ``summary.json``); words/s and sentences/s after start-up; and for Ray the scaling against one
worker (words/s of K workers / words/s of 1 worker). Every variant's output is checked to hold N records.

CLI::

    python benchmarks/bench_ray.py --sentences 100000 --output benchmarks/out/bench_ray.json \\
        --results_md benchmarks/RESULTS.md

``--model untrained`` (the default) is the packaged MiniLM with a random CoNLL head: speed only.
The command appends a section to ``--results_md`` only when asked; the machine stamp (commit, CPU,
load) goes into the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "conll2003" / "train.txt"
TAGTUNE = [sys.executable, "-c", "from tagtune.cli import main; main()"]

logger = logging.getLogger("bench_ray")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="untrained", help="model directory, or 'untrained' (packaged MiniLM, "
                        "random CoNLL head)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL file whose sentences are cycled")
    parser.add_argument("--sentences", type=int, default=100_000, help="sentences tagged by every variant")
    parser.add_argument("--files", type=int, default=8, help="input files the sentences are split into")
    parser.add_argument("--variants", default="single,ray1,ray2", help="single and rayK (K workers), comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="threads of the single process and of each Ray worker")
    parser.add_argument("--precision", default="auto", help="--precision of every variant")
    parser.add_argument("--work_dir", type=Path, default=None, help="inputs and outputs (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--results_md", type=Path, default=None, help="append the table to this Markdown file")
    return parser.parse_args(argv)


def write_inputs(data: Path, sentences: int, files: int, folder: Path) -> int:
    """``sentences`` sentences of ``data`` (cycled) as text lines in ``files`` files; returns the word count."""
    from tagtune.config import DataConfig
    from tagtune.readers import read_file

    examples, _ = read_file(data, DataConfig(), split="train")
    texts = [" ".join(e.tokens) for e in islice(cycle(examples), sentences)]
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-len(texts) // files)
    for index in range(files):
        part = texts[index * per_file:(index + 1) * per_file]
        (folder / f"part{index:03d}.txt").write_text("".join(t + "\n" for t in part), encoding="utf-8")
    return sum(len(t.split()) for t in texts)


def run(command: list[str], log: Path) -> float:
    """Wall seconds of ``command`` (its output to ``log``); fails loudly with the log's tail."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(command[3:])} failed ({code}):\n{log.read_text()[-3000:]}")
    return seconds


def bench_single(model: str, inputs: list[Path], work: Path, args: argparse.Namespace, words: int) -> dict[str, Any]:
    options = ["--threads", str(args.threads), "--precision", args.precision, "--quiet"]
    startup = run([*TAGTUNE, "predict", model, "--text", "Peter visited Paris .", *options], work / "single-start.log")
    out = work / "single.jsonl"
    wall = run([*TAGTUNE, "predict", model, *map(str, inputs), "-o", str(out), *options], work / "single.log")
    records = sum(1 for _ in out.open(encoding="utf-8"))
    tag = max(wall - startup, 1e-9)
    return {"variant": "single", "workers": 1, "threads": args.threads, "wall_s": round(wall, 2),
            "startup_s": round(startup, 2), "tag_s": round(tag, 2), "records": records,
            "words_per_s": round(words / tag, 1), "sentences_per_s": round(records / tag, 2)}


def bench_ray(model: str, folder: Path, work: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    out = work / f"ray{workers}"
    command = [*TAGTUNE, "predict", model, str(folder), "--engine", "ray", "--num_workers", str(workers),
               "--threads", str(args.threads), "--precision", args.precision, "--output_dir", str(out), "--quiet"]
    wall = run(command, work / f"ray{workers}.log")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    last = summary["last_run"]
    return {"variant": f"ray{workers}", "workers": last["workers"], "threads": last["threads"], "wall_s": round(wall, 2),
            "ray_start_s": round(last["ray_start_seconds"], 2), "model_load_s": round(last["workers_ready_seconds"], 2),
            "tag_s": round(last["tag_seconds"], 2), "records": summary["documents"],
            "words_per_s": last["words_per_second"], "sentences_per_s": last["documents_per_second"]}


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, words: int, stamp: dict[str, Any]) -> str:
    one = next((r["words_per_s"] for r in rows if r["variant"] == "ray1"), None)
    lines = ["## Corpus-scale prediction on Ray Data (issue 20)", "",
             f"{args.sentences:,} CoNLL-2003 sentences ({words:,} words, cycled) as text lines in {args.files} files; "
             f"model {args.model}; precision {args.precision}; {args.threads} thread(s) per process/worker. "
             f"Machine: {stamp['cpu']['model']}, {stamp['cpu']['cpus']} CPUs, load {stamp['load_average']}, "
             f"commit {stamp['commit']}.", "",
             "| variant | workers x threads | wall s | start-up s (Ray / model loads) | tagging s | words/s | "
             "sentences/s | scaling vs 1 worker |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        startup = (f"{r['startup_s']}" if r["variant"] == "single" else f"{r['ray_start_s']} / {r['model_load_s']}")
        scaling = f"{r['words_per_s'] / one:.2f}x" if one and r["variant"].startswith("ray") else ""
        lines.append(f"| {r['variant']} | {r['workers']} x {r['threads']} | {r['wall_s']} | {startup} | {r['tag_s']} | "
                     f"{r['words_per_s']:,.0f} | {r['sentences_per_s']:,.1f} | {scaling} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import untrained_model
    from stamp import machine_stamp

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as temp:
        work = args.work_dir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        model = str(untrained_model(work / "model") if args.model == "untrained" else Path(args.model))
        folder = work / "inputs"
        words = write_inputs(args.data, args.sentences, args.files, folder)
        logger.info("%d sentences, %d words in %d files", args.sentences, words, args.files)
        rows = []
        for variant in args.variants.split(","):
            logger.info("running %s", variant)
            if variant == "single":
                rows.append(bench_single(model, sorted(folder.glob("*.txt")), work, args, words))
            elif variant.startswith("ray") and variant[3:].isdigit():
                rows.append(bench_ray(model, folder, work, int(variant[3:]), args))
            else:
                raise SystemExit(f"unknown variant {variant!r}: single or rayK")
            assert rows[-1]["records"] == args.sentences, rows[-1]
            logger.info("%s", rows[-1])
    stamp = machine_stamp()
    table = markdown(rows, args, words, stamp)
    print(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "words": words,
                                           "rows": rows, "machine": stamp}, indent=2) + "\n", encoding="utf-8")
    if args.results_md:
        with open(args.results_md, "a", encoding="utf-8") as handle:
            handle.write("\n" + table)


if __name__ == "__main__":
    main()
