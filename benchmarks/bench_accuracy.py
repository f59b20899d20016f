"""Accuracy benchmark: the upstream recipe against tagtune's training recipes, several seeds and settings.

Every run trains the packaged MiniLM on CoNLL-2003 (the shared JSON files, whose ``doc`` field gives the
documents) with batch 32, learning rate 5e-5 and ``--max_seq_length 128``; each training run is its
own subprocess, one after the other. Settings (``--settings``), so that the default recipe is chosen
across data sizes and tasks, not on one corpus:

    conll   NER, all 14,041 training sentences, 1 epoch (scored by entity F1 on validation and test;
            the upstream recipe also by its own arg-max)
    small   NER, the first 1,000 training sentences, 3 epochs (entity F1 on test)
    pos     part-of-speech tags (CoNLL column 2), 1,000 sentences, 2 epochs (token accuracy on test)
    chunk   chunk tags (CoNLL column 3), 1,000 sentences, 2 epochs (chunk F1 on test)
The small settings are sized for a 2-core CPU on which one upstream CoNLL epoch takes 14 minutes.

Configurations (``--configs``):
    upstream      benchmarks/upstream_run_ner.py: transformers' run_ner.py recipe (random batches,
                  truncation); scored by its own arg-max *and* re-scored by tagtune's evaluator with
                  both decodings ("upstream-trained model, tagtune Viterbi")
    default       tagtune run_ner.py with no batching option: whatever the code's default is
    grouped       --group_by_length true: length-grouped sentence-count batches (the default until 0.2)
    random        --group_by_length false: upstream's random batches
    tokens320 / tokens640 / tokens1280   --max_tokens_per_batch N: token-budget batches
    context32     --context_size 32; crf  --crf; context  --document_context
    loop_default  the Accelerate engine (run_ner_no_trainer.py) with no batching option

Each model is scored in this process on validation and test with both decodings from one forward pass
(``argmax`` and constrained ``viterbi``). Reported per setting: mean and standard deviation over seeds
of the setting's metric per (configuration, decoding), training time (Trainer ``train_runtime``), each
option's paired effect, and the checks of the default against the upstream recipe.

    python benchmarks/bench_accuracy.py --settings small pos chunk conll --configs upstream default grouped
    python benchmarks/bench_accuracy.py --settings small --configs tokens320 tokens1280
    python benchmarks/bench_accuracy.py --settings small --max_train_samples 64 --max_eval_samples 32 \\
        --max_predict_samples 32 --seeds 1 --out benchmarks/out/accuracy_smoke     # smoke run, minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import run_child  # noqa: E402 - benchmarks/ is on sys.path only now
from stamp import machine_stamp  # noqa: E402


@dataclass(frozen=True)
class Setting:
    task: str
    max_train_samples: int | None
    epochs: int
    metric: str  # "f1" (entities, chunks) or "accuracy" (POS: tags have no spans)
    full: bool = False  # also score validation, and the upstream recipe's own test prediction


SETTINGS = {
    "conll": Setting("ner", None, 1, "f1", full=True),
    "small": Setting("ner", 1000, 3, "f1"),
    "pos": Setting("pos", 1000, 2, "accuracy"),
    "chunk": Setting("chunk", 1000, 2, "f1"),
}
TAGTUNE_CONFIGS: dict[str, list[str]] = {
    "default": [],
    "grouped": ["--group_by_length", "true"],
    "random": ["--group_by_length", "false"],
    "tokens320": ["--max_tokens_per_batch", "320"],
    "tokens640": ["--max_tokens_per_batch", "640"],
    "tokens1280": ["--max_tokens_per_batch", "1280"],
    "context32": ["--context_size", "32"],
    "crf": ["--crf"],
    "context": ["--document_context"],
    "context_crf": ["--document_context", "--crf"],
    "loop_default": [],
}
CONFIGS = ("upstream", *TAGTUNE_CONFIGS)
DEFAULT_CONFIGS = ("upstream", "default", "grouped")
DECODINGS = ("argmax", "viterbi")
# (name, configuration and decoding with the option, the same without it)
EFFECTS = (
    ("default recipe vs upstream-trained model (both tagtune Viterbi)", ("default", "viterbi"), ("upstream", "viterbi")),
    ("default recipe vs upstream-trained model (both tagtune arg-max)", ("default", "argmax"), ("upstream", "argmax")),
    ("constrained decoding (upstream-trained model)", ("upstream", "viterbi"), ("upstream", "argmax")),
    ("constrained decoding (default recipe)", ("default", "viterbi"), ("default", "argmax")),
    ("default recipe vs length-grouped (Viterbi)", ("default", "viterbi"), ("grouped", "viterbi")),
    ("default recipe vs random batches (Viterbi)", ("default", "viterbi"), ("random", "viterbi")),
    ("32-token context (Viterbi, vs default)", ("context32", "viterbi"), ("default", "viterbi")),
    ("CRF (vs default, Viterbi)", ("crf", "viterbi"), ("default", "viterbi")),
    ("Accelerate engine vs Trainer engine (default, Viterbi)", ("loop_default", "viterbi"), ("default", "viterbi")),
)


def common_flags(model: str, seed: int, setting: Setting, args: argparse.Namespace) -> list[str]:
    samples = args.max_train_samples or setting.max_train_samples
    limit = ["--max_train_samples", str(samples)] if samples else []
    return ["--model_name_or_path", model, "--per_device_train_batch_size", "32", "--learning_rate", "5e-5",
            "--num_train_epochs", str(setting.epochs), "--seed", str(seed), "--task_name", setting.task, *limit]


def upstream_command(model: str, seed: int, setting: Setting, out: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "benchmarks/upstream_run_ner.py", *common_flags(model, seed, setting, args),
               "--max_seq_length", "128", "--do_train", "--train_file", str(args.data / "json/train.json"),
               "--output_dir", str(out)]
    if setting.full:
        command += ["--do_predict", "--test_file", str(args.data / "json/test.json")]
    if setting.full and args.max_predict_samples:
        command += ["--max_predict_samples", str(args.max_predict_samples)]
    return command


def tagtune_command(model: str, seed: int, setting: Setting, out: Path, name: str,
                    args: argparse.Namespace) -> list[str]:
    common = [*common_flags(model, seed, setting, args), "--train_file", str(args.data / "json/train.json"),
              "--output_dir", str(out), "--overwrite_output_dir"]
    if name == "loop_default":
        return [sys.executable, "examples/token-classification/run_ner_no_trainer.py", *common, "--max_length", "128"]
    return [sys.executable, "examples/token-classification/run_ner.py", *common, "--max_seq_length", "128",
            "--do_train", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            *TAGTUNE_CONFIGS[name]]


def score_decodings(model_dir: Path, examples: Sequence, methods: Sequence[str] = DECODINGS,
                    batch_size: int = 32) -> tuple[dict[str, dict], float, int]:
    """Entity scores and token accuracy of a saved model for each decoding from one forward pass.

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


def read_splits(setting: Setting, args: argparse.Namespace) -> dict[str, list]:
    from tagtune.config import DataConfig
    from tagtune.run import prepare_data

    data = prepare_data(DataConfig(validation_file=args.data / "json/validation.json",
                                   test_file=args.data / "json/test.json", task_name=setting.task,  # type: ignore[arg-type]
                                   max_eval_samples=args.max_eval_samples,
                                   max_predict_samples=args.max_predict_samples))
    return {"validation": data.corpus.splits["validation"], "test": data.corpus.splits["test"]}


def mean_std(values: Sequence[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0, "n": len(values)}


def summarize(runs: dict, setting: Setting) -> dict:
    """Per (configuration, decoding) test/validation scores over seeds, training time, effects, checks."""
    metric = setting.metric
    table: dict[str, dict] = {}
    for name, by_seed in runs.items():
        times = [r["train_runtime_s"] for r in by_seed.values() if r.get("train_runtime_s")]
        for decoding in DECODINGS:
            test = [r["test"][decoding][metric] for r in by_seed.values() if decoding in r.get("test", {})]
            if not test:
                continue
            validation = [r["validation"][decoding][metric] for r in by_seed.values()
                          if decoding in r.get("validation", {})]
            table[f"{name}/{decoding}"] = {"test": mean_std(test),
                                           **({"validation": mean_std(validation)} if validation else {}),
                                           **({"train_runtime_s": mean_std(times)} if times else {})}
        own = [r["upstream_own_test_f1"] for r in by_seed.values() if r.get("upstream_own_test_f1") is not None]
        if own and metric == "f1":
            table[f"{name}/own arg-max"] = {"test": mean_std(own), "train_runtime_s": mean_std(times)}
    effects = {}
    for label, with_, without in EFFECTS:
        a, b = runs.get(with_[0], {}), runs.get(without[0], {})
        diffs = [a[s]["test"][with_[1]][metric] - b[s]["test"][without[1]][metric] for s in a
                 if s in b and with_[1] in a[s].get("test", {}) and without[1] in b[s].get("test", {})]
        if diffs:
            effects[label] = mean_std([100 * d for d in diffs])
    summary: dict = {"metric": metric, "table": table, "effects": effects}
    default, upstream = table.get("default/viterbi"), table.get("upstream/viterbi")
    if default and upstream:
        checks = {"default_minus_upstream_trained_viterbi_points":
                  round(100 * (default["test"]["mean"] - upstream["test"]["mean"]), 2)}
        own = table.get("upstream/own arg-max")
        if own:
            checks["default_minus_upstream_own_argmax_points"] = round(100 * (default["test"]["mean"] - own["test"]["mean"]), 2)
        if "train_runtime_s" in default and "train_runtime_s" in upstream:
            checks["train_time_ratio_default_over_upstream"] = round(
                default["train_runtime_s"]["mean"] / upstream["train_runtime_s"]["mean"], 3)
        summary["checks"] = checks
    return summary


def markdown(name: str, setting: Setting, summary: dict) -> str:
    what = "token accuracy" if setting.metric == "accuracy" else "F1"
    lines = [f"### {name}: {setting.task}, {setting.max_train_samples or 'all'} training sentences, "
             f"{setting.epochs} epoch(s); test {what}", "",
             f"| configuration / decoding | test {what} mean | std | validation mean | train s (mean) | seeds |",
             "|---|---|---|---|---|---|"]
    for key, row in summary["table"].items():
        val = row.get("validation", {}).get("mean")
        secs = row.get("train_runtime_s", {}).get("mean")
        lines.append(f"| {key} | {100 * row['test']['mean']:.2f} | {100 * row['test']['std']:.2f} | "
                     f"{'' if val is None else f'{100 * val:.2f}'} | {'' if secs is None else f'{secs:.1f}'} | "
                     f"{row['test']['n']} |")
    lines += ["", "| effect | test points, paired by seed | std | seeds |", "|---|---|---|---|"]
    for label, effect in summary["effects"].items():
        lines.append(f"| {label} | {effect['mean']:+.2f} | {effect['std']:.2f} | {effect['n']} |")
    for key, value in summary.get("checks", {}).items():
        lines.append(f"\n{key}: {value}")
    return "\n".join(lines) + "\n"


def train_and_score(name: str, seed: int, setting: Setting, out: Path, model: str, splits_of, args) -> dict | None:
    """One training run in its own process, then its model scored here; ``None`` when it failed."""
    command = (upstream_command(model, seed, setting, out, args) if name == "upstream"
               else tagtune_command(model, seed, setting, out, name, args))
    log = out.parent / f"{out.name}.log"
    code, wall, rss = run_child(command, log)
    if code != 0:
        print(f"  failed (exit {code}); see {log}", flush=True)
        return None
    return score_run(name, setting, out, splits_of, {"train_wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1)})


def score_run(name: str, setting: Setting, out: Path, splits_of, record: dict) -> dict:
    """The record of a finished training run in ``out``: its training figures and its scores."""
    record["load_average"] = machine_stamp()["load_average"]
    if name == "upstream":
        raw = json.loads((out / "upstream_figures.json").read_text())
        record["train_runtime_s"] = raw.get("train_runtime_s")
        record["upstream_own_test_f1"] = raw.get("test_f1")
        record["train_padding_fraction"] = raw.get("train_padding_fraction")
    else:
        raw = json.loads((out / "train_results.json").read_text()) if (out / "train_results.json").is_file() else {}
        record["train_runtime_s"] = raw.get("train_runtime")
        record["train_padding_fraction"] = raw.get("train_padding_fraction")
    splits = splits_of()
    for split in ("validation", "test") if setting.full else ("test",):
        scores, seconds, words = score_decodings(out, splits[split])
        record[split] = {m: {"f1": scores[m]["f1"], "accuracy": scores[m]["accuracy"]} for m in scores}
        record[f"{split}_words_per_s"] = round(words / seconds, 1)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "accuracy")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=CONFIGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--max_train_samples", type=int, default=None, help="override the setting's (smoke runs)")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="validation sentences scored")
    parser.add_argument("--max_predict_samples", type=int, default=None, help="test sentences scored")
    parser.add_argument("--keep_models", action="store_true", help="keep each run's model directory")
    parser.add_argument("--adopt", action="store_true",
                        help="score finished runs whose model directory is there but not yet in runs.json "
                             "(a benchmark stopped while scoring), instead of training them again")
    args = parser.parse_args(argv)
    if not (args.data / "json" / "train.json").is_file():
        sys.exit(f"CoNLL-2003 not found at {args.data}")
    import shutil

    from tagtune.defaults import packaged_model_dir

    model = str(packaged_model_dir())
    command = " ".join(["python benchmarks/bench_accuracy.py", *(argv if argv is not None else sys.argv[1:])])
    report = []
    for setting_name in args.settings:
        setting = SETTINGS[setting_name]
        folder = args.out / setting_name
        folder.mkdir(parents=True, exist_ok=True)
        results_file = folder / "runs.json"
        # Finished runs are kept, so an interrupted benchmark resumes where it stopped.
        runs: dict = json.loads(results_file.read_text()) if results_file.is_file() else {}
        cache: dict = {}

        def splits_of(setting=setting, cache=cache):
            if "splits" not in cache:
                cache["splits"] = read_splits(setting, args)
            return cache["splits"]

        # Seeds outside, configurations inside: a benchmark cut short still compares every configuration.
        for seed in args.seeds:
            for name in args.configs:
                if str(seed) in runs.get(name, {}):
                    continue
                out = folder / f"{name}_seed{seed}"
                finished = (out / ("upstream_figures.json" if name == "upstream" else "all_results.json")).is_file()
                if args.adopt and finished:
                    print(f"{setting_name}: scoring the finished {name} seed {seed} ...", flush=True)
                    record = score_run(name, setting, out, splits_of, {"adopted": True})
                else:
                    print(f"{setting_name}: training {name} seed {seed} ...", flush=True)
                    record = train_and_score(name, seed, setting, out, model, splits_of, args)
                if not args.keep_models:
                    shutil.rmtree(out, ignore_errors=True)
                if record is None:
                    continue
                runs.setdefault(name, {})[str(seed)] = record
                results_file.write_text(json.dumps(runs, indent=2) + "\n")
                print(f"  {json.dumps({k: record[k] for k in ('train_runtime_s', 'test')})}", flush=True)
        summary = summarize(runs, setting)
        figures = {"command": command, "setting": setting_name, "model": model, "stamp": machine_stamp(),
                   "runs": runs, **summary}
        (folder / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        report.append(markdown(setting_name, setting, summary))
    text = "\n".join(report)
    (args.out / "RESULTS.md").write_text(text)
    print(text)
    return {"report": text}


if __name__ == "__main__":
    main()
