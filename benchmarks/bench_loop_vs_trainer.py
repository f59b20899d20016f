"""Benchmark: tagtune's two engines, the transformers Trainer and the bare Accelerate loop, on one recipe.

Both fine-tune the packaged MiniLM on CoNLL-2003 (the shared JSON with ``labels.json``) with the same
settings (``--max_length 128``, batch 32, lr 5e-5, 1 epoch, seed 42, eval batch 32), evaluate on the
validation set and predict the test set with tagtune's word-level evaluation (windows, Viterbi,
seqeval-equal entity scores). Each engine runs in its own subprocess, one after the other, so they do
not compete for the cores and peak RSS is per run. Printed and written to JSON: test entity
precision/recall/F1 and token accuracy per engine, the F1 difference (loop - trainer), training
loss, training and wall time, and peak RSS.

Both engines clip gradients at norm 1.0 (the loop's ``--max_grad_norm``; upstream
``run_ner_no_trainer.py`` does not clip, which cost 2.1 F1 points in one epoch here). Both use
length-grouped batches, AdamW, a linear schedule without warm-up and no weight decay.

    python benchmarks/bench_loop_vs_trainer.py --out benchmarks/out/loop_vs_trainer
    python benchmarks/bench_loop_vs_trainer.py --max_train_samples 64 --max_eval_samples 32 \\
        --max_predict_samples 32 --out /tmp/bench-smoke                      # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003" / "json"
EXAMPLES = REPO / "examples" / "token-classification"
ENGINES = ("trainer", "loop")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Folder with train/validation/test.json.")
    parser.add_argument("--model", type=str, default=None, help="Model directory (default: packaged MiniLM).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "loop_vs_trainer")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--num_train_epochs", type=float, default=1)
    parser.add_argument("--max_train_samples", type=int, default=None, help="Smoke runs: first N sentences.")
    parser.add_argument("--max_eval_samples", type=int, default=None)
    parser.add_argument("--max_predict_samples", type=int, default=None)
    return parser.parse_args(argv)


def engine_command(engine: str, args: argparse.Namespace, model: str, output: Path) -> list[str]:
    """The command line of one engine: upstream flags, the same values for both."""
    data = args.data
    common = ["--model_name_or_path", model, "--train_file", str(data / "train.json"),
              "--validation_file", str(data / "validation.json"), "--test_file", str(data / "test.json"),
              "--output_dir", str(output), "--overwrite_output_dir", "--per_device_train_batch_size",
              str(args.batch_size), "--per_device_eval_batch_size", "32", "--learning_rate", str(args.learning_rate),
              "--num_train_epochs", str(args.num_train_epochs), "--seed", str(args.seed)]
    for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        if getattr(args, flag) is not None:
            common += [f"--{flag}", str(getattr(args, flag))]
    if engine == "trainer":
        return [sys.executable, str(EXAMPLES / "run_ner.py"), *common, "--max_seq_length", str(args.max_length),
                "--do_train", "--do_eval", "--do_predict", "--report_to", "none", "--save_strategy", "no",
                "--disable_tqdm", "true"]
    return [sys.executable, str(EXAMPLES / "run_ner_no_trainer.py"), *common, "--max_length", str(args.max_length)]


def run_engine(engine: str, args: argparse.Namespace, model: str) -> dict:
    """Train, evaluate and predict with one engine in a subprocess; its figures."""
    output = args.out / engine
    log = args.out / f"{engine}.log"
    command = engine_command(engine, args, model, output)
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"{engine} failed with exit status {code}; see {log}:\n" + "\n".join(tail))
    results = json.loads((output / "all_results.json").read_text())
    pick = {key: results.get(key) for key in (
        "predict_precision", "predict_recall", "predict_f1", "predict_accuracy", "predict_words", "eval_f1",
        "train_loss", "train_runtime", "train_samples")}
    return {**pick, "wall_seconds": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "command": command}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.model is None:
        from tagtune.defaults import packaged_model_dir

        args.model = str(packaged_model_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    figures: dict = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "engines": {},
    }
    for engine in args.engines:
        print(f"running {engine} ...", flush=True)
        figures["engines"][engine] = run_engine(engine, args, args.model)
    engines = figures["engines"]
    if {"trainer", "loop"} <= engines.keys():
        figures["f1_difference_loop_minus_trainer"] = engines["loop"]["predict_f1"] - engines["trainer"]["predict_f1"]
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")

    print(f"{'engine':8} {'test F1':>8} {'precision':>9} {'recall':>7} {'accuracy':>8} {'loss':>7} "
          f"{'train s':>8} {'wall s':>7} {'RSS MiB':>8}")
    for name, row in engines.items():
        print(f"{name:8} {row['predict_f1']:8.4f} {row['predict_precision']:9.4f} {row['predict_recall']:7.4f} "
              f"{row['predict_accuracy']:8.4f} {row['train_loss']:7.4f} {row['train_runtime']:8.1f} "
              f"{row['wall_seconds']:7.1f} {row['peak_rss_mib']:8.0f}")
    if "f1_difference_loop_minus_trainer" in figures:
        print(f"test F1 difference (loop - trainer): {figures['f1_difference_loop_minus_trainer']:+.4f}")
    print(f"figures: {args.out / 'figures.json'}")
    return figures


if __name__ == "__main__":
    main()
