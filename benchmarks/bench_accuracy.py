"""Accuracy benchmark: the plain upstream recipe against tagtune's options, several seeds each.

Every configuration trains the packaged MiniLM on CoNLL-2003 (the shared JSON files, whose ``doc``
field gives the documents) with the same budget: 1 epoch, ``--max_seq_length 128``, batch 32,
learning rate 5e-5, seeds 1 2 3. Each training run is its own subprocess, one after the other.

Configurations (``--configs``):
    upstream      benchmarks/upstream_run_ner.py: transformers' run_ner.py recipe, arg-max, truncation
    plain         tagtune run_ner.py, no option
    context       + --document_context (neighbouring sentences of the document fill each window)
    crf           + --crf (linear-chain CRF over words, learned transitions)
    context_crf   + --document_context --crf
    context32, context32_crf   --context_size 32 (at most 32 sub-tokens a side: 3.8x the sub-tokens of
                  plain instead of 5.4x), without / with --crf; not run unless named
    plain_random  --group_by_length false: upstream's random batches (62% padding); not run unless named
    plain_tokens  --max_tokens_per_batch 640 (about 32 sentences of CoNLL's mean length, so about as many
                  steps): every step weighs about as many tokens; not run unless named

Each tagtune model is then scored in this process on validation and test with both decodings (one
forward pass, decoded twice): ``argmax`` and constrained ``viterbi`` (with a CRF's transitions when it
has one). Reported: mean and standard deviation over seeds of test entity F1 per (configuration,
decoding), each option's own effect as the mean paired (same seed) difference, and the best tagtune
configuration chosen on *validation* F1 against the upstream recipe on test.

    python benchmarks/bench_accuracy.py                                   # everything (hours on 2 cores)
    python benchmarks/bench_accuracy.py --configs upstream plain --seeds 1
    python benchmarks/bench_accuracy.py --max_train_samples 64 --max_eval_samples 32 --seeds 1 \\
        --out benchmarks/out/accuracy_smoke                              # smoke run, a few minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import run_child

TAGTUNE_CONFIGS: dict[str, list[str]] = {
    "plain": [],
    "context": ["--document_context"],
    "crf": ["--crf"],
    "context_crf": ["--document_context", "--crf"],
    "context32": ["--context_size", "32"],
    "context32_crf": ["--context_size", "32", "--crf"],
    "plain_random": ["--group_by_length", "false"],
    "plain_tokens": ["--max_tokens_per_batch", "640"],
}
CONFIGS = ("upstream", *TAGTUNE_CONFIGS)
DEFAULT_CONFIGS = ("upstream", "plain", "context", "crf", "context_crf")
DECODINGS = ("argmax", "viterbi")
# (name, configuration and decoding with the option, the same without it)
EFFECTS = (
    ("constrained decoding (plain)", ("plain", "viterbi"), ("plain", "argmax")),
    ("constrained decoding (context)", ("context", "viterbi"), ("context", "argmax")),
    ("constrained decoding (32-token context)", ("context32", "viterbi"), ("context32", "argmax")),
    ("document context (viterbi)", ("context", "viterbi"), ("plain", "viterbi")),
    ("document context (argmax)", ("context", "argmax"), ("plain", "argmax")),
    ("CRF (viterbi, vs plain viterbi)", ("crf", "viterbi"), ("plain", "viterbi")),
    ("CRF (viterbi, with context)", ("context_crf", "viterbi"), ("context", "viterbi")),
    ("context + CRF (vs plain viterbi)", ("context_crf", "viterbi"), ("plain", "viterbi")),
    ("32-token context (viterbi)", ("context32", "viterbi"), ("plain", "viterbi")),
    ("32-token context (argmax)", ("context32", "argmax"), ("plain", "argmax")),
    ("length-grouped batches (argmax, vs random batches)", ("plain", "argmax"), ("plain_random", "argmax")),
    ("length-grouped batches (viterbi, vs random batches)", ("plain", "viterbi"), ("plain_random", "viterbi")),
    ("32-token context + CRF (vs plain viterbi)", ("context32_crf", "viterbi"), ("plain", "viterbi")),
    ("32-token context (with CRF, vs CRF)", ("context32_crf", "viterbi"), ("crf", "viterbi")),
    ("tagtune plain argmax vs upstream", ("plain", "argmax"), ("upstream", "argmax")),
)


def common_flags(model: str, seed: int, max_train_samples: int | None) -> list[str]:
    limit = ["--max_train_samples", str(max_train_samples)] if max_train_samples else []
    return ["--model_name_or_path", model, "--max_seq_length", "128", "--per_device_train_batch_size", "32",
            "--learning_rate", "5e-5", "--num_train_epochs", "1", "--seed", str(seed), *limit]


def upstream_command(model: str, seed: int, out: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "benchmarks/upstream_run_ner.py", *common_flags(model, seed, args.max_train_samples),
               "--do_train", "--do_predict", "--train_file", str(args.data / "json/train.json"),
               "--test_file", str(args.data / "json/test.json"), "--output_dir", str(out)]
    if args.max_predict_samples:
        command += ["--max_predict_samples", str(args.max_predict_samples)]
    return command


def tagtune_command(model: str, seed: int, out: Path, flags: Sequence[str], args: argparse.Namespace) -> list[str]:
    return [sys.executable, "examples/token-classification/run_ner.py", *common_flags(model, seed, args.max_train_samples),
            "--do_train", "--train_file", str(args.data / "json/train.json"), "--output_dir", str(out),
            "--overwrite_output_dir", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            *flags]


def score_decodings(model_dir: Path, examples: Sequence, methods: Sequence[str] = DECODINGS,
                    batch_size: int = 32) -> tuple[dict[str, dict], float, int]:
    """Entity scores of a saved model for each decoding from one forward pass.

    Returns:
        ``({method: EntityScorer.result()}, seconds, words)``; seconds cover encoding, forward passes and
        every decoding.
    """
    import torch

    from tagtune.checkpoint import load_checkpoint
    from tagtune.inference import iter_word_scores, model_forward
    from tagtune.metrics import EntityScorer

    torch.set_num_threads(2)
    checkpoint = load_checkpoint(model_dir)
    aligner = checkpoint.aligner()
    decoders = {m: checkpoint.decoder(m) for m in methods}  # type: ignore[arg-type]
    scorers = {m: EntityScorer() for m in methods}
    start = time.perf_counter()
    encoding = aligner.encode(list(examples), labelled=False)
    for index, scores in iter_word_scores(model_forward(checkpoint.model), encoding, len(checkpoint.labels),
                                          pad_id=aligner.pad_id, batch_size=batch_size):
        gold = [list(examples[index].tags)]
        for method in methods:
            scorers[method].update(gold, [decoders[method](scores)])
    seconds = time.perf_counter() - start
    return {m: s.result() for m, s in scorers.items()}, seconds, sum(len(e.tokens) for e in examples)


def read_splits(args: argparse.Namespace) -> dict[str, list]:
    from tagtune.config import DataConfig
    from tagtune.train import prepare_data

    data = prepare_data(DataConfig(validation_file=args.data / "json/validation.json",
                                   test_file=args.data / "json/test.json", max_eval_samples=args.max_eval_samples,
                                   max_predict_samples=args.max_predict_samples))
    return {"validation": data.corpus.splits["validation"], "test": data.corpus.splits["test"]}


def mean_std(values: Sequence[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def summarize(runs: dict) -> dict:
    """Per (configuration, decoding) test/validation F1 over seeds, option effects, and the verdict."""
    table: dict[str, dict] = {}
    for name, by_seed in runs.items():
        for decoding in DECODINGS:
            test = [r["test"][decoding] for r in by_seed.values() if decoding in r.get("test", {})]
            if not test:
                continue
            validation = [r["validation"][decoding] for r in by_seed.values() if decoding in r.get("validation", {})]
            table[f"{name}/{decoding}"] = {"test_f1": mean_std(test),
                                           **({"validation_f1": mean_std(validation)} if validation else {})}
    effects = {}
    for label, with_, without in EFFECTS:
        a, b = runs.get(with_[0], {}), runs.get(without[0], {})
        diffs = [a[s]["test"][with_[1]] - b[s]["test"][without[1]] for s in a
                 if s in b and with_[1] in a[s]["test"] and without[1] in b[s]["test"]]
        if diffs:
            effects[label] = {"test_f1_points": mean_std([100 * d for d in diffs])}
    summary: dict = {"table": table, "effects": effects}
    candidates = {k: v for k, v in table.items() if not k.startswith("upstream/") and "validation_f1" in v}
    # Only configurations run with every seed compete: a one-seed mean is not comparable.
    most_seeds = max((v["validation_f1"]["n"] for v in candidates.values()), default=0)
    candidates = {k: v for k, v in candidates.items() if v["validation_f1"]["n"] == most_seeds}
    if candidates:
        best = max(candidates, key=lambda k: candidates[k]["validation_f1"]["mean"])
        summary["best_by_validation"] = best
        if "upstream/argmax" in table:
            gap = 100 * (table[best]["test_f1"]["mean"] - table["upstream/argmax"]["test_f1"]["mean"])
            summary["best_minus_upstream_test_f1_points"] = round(gap, 2)
            summary["target_1.5_points_met"] = gap >= 1.5
    return summary


def markdown(summary: dict) -> str:
    lines = ["| configuration / decoding | test F1 mean | std | validation F1 mean | seeds |", "|---|---|---|---|---|"]
    for key, row in summary["table"].items():
        val = row.get("validation_f1", {}).get("mean")
        lines.append(f"| {key} | {100 * row['test_f1']['mean']:.2f} | {100 * row['test_f1']['std']:.2f} | "
                     f"{'' if val is None else f'{100 * val:.2f}'} | {row['test_f1']['n']} |")
    lines += ["", "| option | effect on test F1 (points, paired by seed) | std |", "|---|---|---|"]
    for label, effect in summary["effects"].items():
        lines.append(f"| {label} | {effect['test_f1_points']['mean']:+.2f} | {effect['test_f1_points']['std']:.2f} |")
    if "best_by_validation" in summary:
        lines += ["", f"best tagtune configuration (validation): {summary['best_by_validation']}"]
    if "best_minus_upstream_test_f1_points" in summary:
        lines.append(f"best minus upstream, test F1: {summary['best_minus_upstream_test_f1_points']:+.2f} points")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "accuracy")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=CONFIGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_eval_samples", type=int, default=None, help="validation sentences scored")
    parser.add_argument("--max_predict_samples", type=int, default=None, help="test sentences scored")
    parser.add_argument("--keep-going", action="store_true", help="skip a failed run instead of stopping")
    args = parser.parse_args(argv)
    if not (args.data / "json" / "train.json").is_file():
        sys.exit(f"CoNLL-2003 not found at {args.data}")
    from tagtune.defaults import packaged_model_dir

    model = str(packaged_model_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "runs.json"
    # Finished runs are kept, so an interrupted benchmark resumes where it stopped.
    runs: dict = json.loads(results_file.read_text()) if results_file.is_file() else {}
    splits = None
    # Seeds outside, configurations inside: a benchmark cut short still compares every configuration.
    for seed in args.seeds:
        for name in args.configs:
            key = str(seed)
            if key in runs.get(name, {}):
                print(f"{name} seed {seed}: already done", flush=True)
                continue
            out = args.out / f"{name}_seed{seed}"
            command = (upstream_command(model, seed, out, args) if name == "upstream"
                       else tagtune_command(model, seed, out, TAGTUNE_CONFIGS[name], args))
            print(f"training {name} seed {seed} ...", flush=True)
            code, wall, rss = run_child(command, args.out / f"{name}_seed{seed}.log")
            if code != 0:
                message = f"{name} seed {seed} failed (exit {code}); see {args.out / f'{name}_seed{seed}.log'}"
                if args.keep_going:
                    print(message, flush=True)
                    continue
                sys.exit(message)
            record: dict = {"train_wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1)}
            if name == "upstream":
                raw = json.loads((out / "upstream_figures.json").read_text())
                record["test"] = {"argmax": raw["test_f1"]}
                record["test_f1_all_words"] = raw["test_f1_all_words"]
            else:
                splits = splits or read_splits(args)
                raw = json.loads((out / "train_results.json").read_text()) if (out / "train_results.json").is_file() else {}
                record["train_runtime_s"] = raw.get("train_runtime")
                for split in ("validation", "test"):
                    scores, seconds, words = score_decodings(out, splits[split])
                    record[split] = {m: scores[m]["f1"] for m in scores}
                    record[f"{split}_words_per_s"] = round(words / seconds, 1)
            runs.setdefault(name, {})[key] = record
            results_file.write_text(json.dumps(runs, indent=2) + "\n")
            print(f"  {json.dumps(record)}", flush=True)
    summary = summarize(runs)
    figures = {"command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
               "model": model, "runs": runs, **summary}
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(summary))
    print(markdown(summary))
    return figures


if __name__ == "__main__":
    main()
