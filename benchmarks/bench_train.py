"""Training benchmark: the plain upstream recipe against tagtune's run_ner.py, in one run.

Both train the packaged MiniLM on CoNLL-2003 for the same budget (1 epoch, batch 32, lr 5e-5, length
128, seed 42) and predict the test set. Each runs in its own subprocess, one after the other, so peak
RSS is measured per run (``wait4``) and they do not compete for the two cores. Reported side by side:
test entity F1, training wall time and its ratio, padding share of the training batches, real
sub-tokens per second, model FLOPs utilisation against the fp32 matmul peak measured in the same run,
and peak RSS.

    python benchmarks/bench_train.py --out benchmarks/out/train           # upstream + tagtune (JSON)
    python benchmarks/bench_train.py --also-conll-txt                      # + tagtune on the .txt files
    python benchmarks/bench_train.py --also-bf16                           # + tagtune with bf16 autocast
    python benchmarks/bench_train.py --max_train_samples 200 --skip-upstream   # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"


def run_child(command: list[str], log: Path) -> tuple[int, float, float]:
    """Run ``command`` with output to ``log``; returns ``(exit status, wall seconds, peak RSS MiB)``."""
    start = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                   env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage.ru_maxrss / 1024


def matmul_peak_gflops(dtype: str = "float32", seconds: float = 3.0) -> float:
    """Best sustained GFLOP/s of a 1024x1024 matmul on this machine's 2 threads."""
    import torch

    torch.set_num_threads(2)
    a = torch.randn(1024, 1024, dtype=getattr(torch, dtype))
    b = torch.randn(1024, 1024, dtype=getattr(torch, dtype))
    for _ in range(3):
        a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * 1024**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_real_token(model_dir: str, seq_len: float) -> float:
    """Training FLOPs per real token: 6 x non-embedding parameters plus attention scores (fwd + bwd)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    params = layers * (4 * h * h + 2 * h * inter)
    attention = layers * 2 * 2 * h * seq_len  # QK^T and AV, 2 FLOPs a multiply-add
    return 6 * params + 3 * attention


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "train")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--skip-upstream", action="store_true")
    parser.add_argument("--also-conll-txt", action="store_true", help="also train tagtune on the CoNLL .txt files")
    parser.add_argument("--also-bf16", action="store_true", help="also train tagtune with --bf16 (CPU autocast)")
    parser.add_argument("--tagtune-flags", default="", help="extra flags for tagtune's run_ner.py")
    args = parser.parse_args(argv)
    if not (DATA / "json" / "train.json").is_file():
        sys.exit(f"CoNLL-2003 not found at {DATA}")
    from tagtune.defaults import packaged_model_dir

    model = str(packaged_model_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    limit = ["--max_train_samples", str(args.max_train_samples)] if args.max_train_samples else []
    common = ["--model_name_or_path", model, "--max_seq_length", "128", "--per_device_train_batch_size", "32",
              "--learning_rate", "5e-5", "--num_train_epochs", "1", "--seed", str(args.seed), *limit]
    figures: dict = {"command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                     "fp32_matmul_peak_gflops": round(matmul_peak_gflops(), 1)}
    runs = {}
    if not args.skip_upstream:
        runs["upstream"] = [sys.executable, "benchmarks/upstream_run_ner.py", *common, "--do_train", "--do_predict",
                            "--train_file", str(DATA / "json/train.json"), "--test_file", str(DATA / "json/test.json"),
                            "--output_dir", str(args.out / "upstream")]
    tagtune_common = [sys.executable, "examples/token-classification/run_ner.py", *common, "--do_train", "--do_predict",
                      "--overwrite_output_dir", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
                      *args.tagtune_flags.split()]
    runs["tagtune"] = [*tagtune_common, "--train_file", str(DATA / "json/train.json"),
                       "--test_file", str(DATA / "json/test.json"), "--output_dir", str(args.out / "tagtune")]
    if args.also_bf16:
        runs["tagtune_bf16"] = [*tagtune_common, "--bf16", "true", "--train_file", str(DATA / "json/train.json"),
                                "--test_file", str(DATA / "json/test.json"), "--output_dir", str(args.out / "tagtune_bf16")]
    if args.also_conll_txt:
        runs["tagtune_conll_txt"] = [*tagtune_common, "--train_file", str(DATA / "train.txt"),
                                     "--test_file", str(DATA / "test.txt"), "--output_dir", str(args.out / "tagtune_txt")]
    for name, command in runs.items():
        print(f"running {name} ...", flush=True)
        code, wall, rss = run_child(command, args.out / f"{name}.log")
        if code != 0:
            sys.exit(f"{name} failed with exit status {code}; see {args.out / f'{name}.log'}")
        figures[name] = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1), **_read_results(name, args.out)}
    _derive(figures, model)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return figures


def _read_results(name: str, out: Path) -> dict:
    if name == "upstream":
        raw = json.loads((out / "upstream" / "upstream_figures.json").read_text())
        return {"test_f1": raw["test_f1"], "test_f1_all_words": raw["test_f1_all_words"],
                "train_runtime_s": raw["train_runtime_s"], "train_padding_fraction": raw["train_padding_fraction"],
                "train_real_tokens": raw["train_real_tokens"], "test_words_scored": raw["test_words"] - raw["test_truncated_words"],
                "test_truncated_words": raw["test_truncated_words"]}
    directory = {"tagtune": "tagtune", "tagtune_conll_txt": "tagtune_txt", "tagtune_bf16": "tagtune_bf16"}[name]
    raw = json.loads((out / directory / "all_results.json").read_text())
    lines = (out / directory / "predictions.txt").read_text().split("\n")
    return {"test_f1": raw["predict_f1"], "train_runtime_s": raw["train_runtime"],
            "train_padding_fraction": raw["train_padding_fraction"], "train_real_tokens": raw["train_real_tokens"],
            "test_words_scored": raw["predict_words"], "predictions_txt_word_lines": sum(1 for x in lines if x),
            "test_windowed_sentences": raw.get("predict_windowed_sentences", 0)}


def _derive(figures: dict, model: str) -> None:
    peak = figures["fp32_matmul_peak_gflops"]
    for _name, run in figures.items():
        if not isinstance(run, dict) or "train_real_tokens" not in run:
            continue
        tokens, seconds = run["train_real_tokens"], run["train_runtime_s"]
        run["real_tokens_per_s"] = round(tokens / seconds, 1)
        run["mfu_real_tokens"] = round(flops_per_real_token(model, 20.0) * tokens / seconds / 1e9 / peak, 4)
    if "upstream" in figures:
        up, tt = figures["upstream"], figures["tagtune"]
        figures["ratio_train_time_tagtune_over_upstream"] = round(tt["train_runtime_s"] / up["train_runtime_s"], 3)
        figures["ratio_mfu_tagtune_over_upstream"] = round(tt["mfu_real_tokens"] / up["mfu_real_tokens"], 3)
        figures["f1_difference_points"] = round(100 * (tt["test_f1"] - up["test_f1"]), 2)
        if "tagtune_bf16" in figures:
            bf = figures["tagtune_bf16"]
            figures["ratio_train_time_bf16_over_upstream"] = round(bf["train_runtime_s"] / up["train_runtime_s"], 3)
            figures["f1_difference_bf16_points"] = round(100 * (bf["test_f1"] - up["test_f1"]), 2)


if __name__ == "__main__":
    main()
