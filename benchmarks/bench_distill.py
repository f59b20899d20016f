"""Distillation: the teacher against 2- and 3-layer students, with and without unlabelled text, on the same
CoNLL-2003 files: test F1 and words/s (torch fp32 and ONNX int8, batch 1 and large batches).

One invocation:

1. the teacher: ``--teacher DIR`` (a fine-tuned tagtune model), else the packaged MiniLM fine-tuned here by
   the bare loop for ``--teacher_seconds`` on the labelled training sentences;
2. for each ``--layers`` count, a student distilled for ``--seconds`` of training time (``tagtune.distill``:
   the teacher's layers kept evenly spaced, default T and soft weight), once on the labelled sentences
   only and, when there is unlabelled text, once more with it (same time budget; the teacher tags the
   text once, before the clock starts, and that time is reported apart);
3. every model exported to ONNX int8 (``tagtune export --quantize int8``);
4. each model tags the same pre-split test sentences, torch fp32 and ONNX int8, at batch 1
   (``batch_size=1``) and with the default large batches, on ``--threads`` threads: median words/s over
   ``--repeats`` runs (after a warm-up) and entity F1 (seqeval default);
5. where the time goes on the ONNX int8 path of each student (raw text in: pretokenization, tokenization
   and alignment, the model, decoding, the rest);
6. with ``--spacy_model DIR`` (a pipeline saved by bench_spacy.py, spaCy installed), spaCy on the same
   sentences and threads. Training spaCy here is left to bench_spacy.py.

CoNLL-2003 ships no raw text: ``--unlabelled_file`` gives some (any format ``tagtune predict`` reads), or
``--labelled_samples N`` keeps the first N training sentences labelled and gives the rest to the teacher
as raw text (their tags dropped; ``--unlabelled_samples`` bounds them).

    python benchmarks/bench_distill.py --teacher benchmarks/out/minilm-conll --seconds 900 \\
        --out benchmarks/out/distill                                        # the comparison
    python benchmarks/bench_distill.py --smoke --out benchmarks/out/distill_smoke   # minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"
SPLIT_FILES = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
sys.path.insert(0, str(Path(__file__).resolve().parent))

logger = logging.getLogger("bench_distill")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "distill")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of CoNLL-2003 train.txt, valid.txt, test.txt")
    parser.add_argument("--teacher", type=Path, default=None, help="fine-tuned teacher (default: train one here)")
    parser.add_argument("--teacher_seconds", type=float, default=900.0, help="training time of a teacher trained here")
    parser.add_argument("--seconds", type=float, default=900.0, help="distillation training time of each student")
    parser.add_argument("--steps", type=int, default=None, help="distil each student for this many optimizer steps "
                        "instead of --seconds (token-budget batches make every step the same size, so a step "
                        "budget is a time budget that does not depend on what else runs on the machine)")
    parser.add_argument("--students", type=Path, nargs="+", default=None, help="students distilled before (e.g. by "
                        "`tagtune distill`): measure these instead of distilling here")
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 3], help="student layer counts")
    parser.add_argument("--learning_rate", type=float, default=None, help="students' peak learning rate "
                        "(default: tagtune distill's)")
    parser.add_argument("--unlabelled_file", type=Path, default=None, help="raw text for the teacher to tag")
    parser.add_argument("--labelled_samples", type=int, default=None,
                        help="first N training sentences labelled; the rest is unlabelled text")
    parser.add_argument("--unlabelled_samples", type=int, default=None, help="at most this many unlabelled documents")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="validation sentences (during training)")
    parser.add_argument("--predict_samples", type=int, default=None, help="test sentences tagged and timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement")
    parser.add_argument("--spacy_model", type=Path, default=None, help="a spaCy pipeline (bench_spacy.py's model-best)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--smoke", action="store_true",
                        help="a few hundred sentences and seconds of training: checks that everything runs")
    args = parser.parse_args(argv)
    if args.smoke:
        for name, value in (("teacher_seconds", 40.0), ("seconds", 15.0), ("labelled_samples", 300),
                            ("unlabelled_samples", 300), ("max_eval_samples", 100), ("predict_samples", 200),
                            ("repeats", 1)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        if args.layers == parser.get_default("layers"):
            args.layers = [2]
    return args


def read_splits(data: Path, predict: int | None) -> dict[str, list]:
    """The whole training split (labelled and unlabelled parts are cut from it) and the test split."""
    from tagtune.config import DataConfig
    from tagtune.run import prepare_data

    prepared = prepare_data(DataConfig(train_file=data / SPLIT_FILES["train"], test_file=data / SPLIT_FILES["test"],
                                       max_predict_samples=predict))
    return prepared.corpus.splits


def train_teacher(args: argparse.Namespace) -> Path:
    """The packaged MiniLM fine-tuned by the bare loop for ``--teacher_seconds`` (tagtune's default recipe)."""
    from tagtune.defaults import packaged_model_dir
    from tagtune.flags import parse_loop_args
    from tagtune.loop import run_loop
    from tagtune.loop_tools import release_accelerate_state

    out = args.out / "teacher"
    flags = ["--model_name_or_path", str(packaged_model_dir()), "--train_file", str(args.data / SPLIT_FILES["train"]),
             "--output_dir", str(out), "--overwrite_output_dir", "--per_device_train_batch_size", "32",
             "--num_train_epochs", "1000", "--max_train_seconds", str(args.teacher_seconds), "--seed", str(args.seed)]
    if args.labelled_samples:
        flags += ["--max_train_samples", str(args.labelled_samples)]
    print(f"training the teacher for {args.teacher_seconds:g} s ...", flush=True)
    try:
        run_loop(parse_loop_args(flags))
    finally:
        release_accelerate_state()
    return out


def unlabelled_text(args: argparse.Namespace, train: Sequence) -> Path | None:
    """``--unlabelled_file``, or the training sentences beyond ``--labelled_samples`` as raw text lines."""
    if args.unlabelled_file:
        return args.unlabelled_file
    if not args.labelled_samples:
        return None
    rest = train[args.labelled_samples:][:args.unlabelled_samples]
    path = args.out / "unlabelled.txt"
    path.write_text("".join(" ".join(e.tokens) + "\n" for e in rest), encoding="utf-8")
    return path


def distill_student(args: argparse.Namespace, teacher: Path, layers: int, unlabelled: Path | None) -> tuple[Path, dict]:
    from tagtune.distill import DistillConfig, distill, student_run_config

    name = f"student_{layers}l" + ("_unlabelled" if unlabelled else "")
    settings = DistillConfig(teacher=teacher, student_layers=layers, unlabelled_files=(unlabelled,) if unlabelled else (),
                             max_unlabelled_samples=args.unlabelled_samples)
    config = student_run_config(
        settings, output_dir=args.out / name, train_file=args.data / SPLIT_FILES["train"],
        validation_file=args.data / SPLIT_FILES["validation"], max_train_samples=args.labelled_samples,
        max_eval_samples=args.max_eval_samples, num_train_epochs=1000,
        **({"max_train_steps": args.steps} if args.steps else {"max_train_seconds": args.seconds}),
        seed=args.seed, overwrite_output_dir=True,
        **({"learning_rate": args.learning_rate} if args.learning_rate is not None else {}))
    print(f"distilling {name} for {f'{args.steps} steps' if args.steps else f'{args.seconds:g} s'} ...", flush=True)
    results = distill(config, settings)
    keep = ("train_runtime", "train_steps", "teacher_seconds", "unlabelled_samples", "unlabelled_windows", "eval_f1")
    return args.out / name, {k: results[k] for k in keep if k in results}


def given_student(path: Path) -> dict:
    """What a student distilled before says of its training (``distill.json``, ``train_results.json``)."""
    record: dict[str, Any] = {"dir": str(path)}
    for name in ("distill.json", "train_results.json"):
        if (path / name).is_file():
            record[name.removesuffix(".json")] = json.loads((path / name).read_text())
    return record


def export_int8(model_dir: Path) -> Path:
    from tagtune.export import ExportConfig, export_onnx

    target = model_dir / "onnx"
    if not (target / "model_int8.onnx").is_file():
        export_onnx(model_dir, target, ExportConfig(quantize="int8"))
    return target


def timed(run: Callable[[], list], repeats: int) -> tuple[list, list[float]]:
    run()  # warm-up: first calls allocate, compile kernels, fill caches
    seconds, result = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def measure_tagger(load: Callable[[], Any], examples: Sequence, repeats: int) -> dict:
    """Words/s (median, min, max over ``repeats``) and entity F1 of a tagger on pre-split sentences."""
    from tagtune.corpus import Example
    from tagtune.metrics import score

    tagger = load()
    inputs = [Example(e.tokens) for e in examples]
    predictions, seconds = timed(lambda: list(tagger.predict_examples(inputs)), repeats)
    words = sum(len(e.tokens) for e in examples)
    result = score([list(e.tags) for e in examples], [p.tags for p in predictions])
    return {"words_per_s": round(words / statistics.median(seconds), 1),
            "words_per_s_range": [round(words / max(seconds), 1), round(words / min(seconds), 1)],
            "test_f1": round(result["f1"], 4), "backend": tagger.backend, "precision": tagger.precision}


def time_breakdown(model_dir: Path, texts: Sequence[str], batch_size: int | None, threads: int) -> dict:
    """Seconds of one ONNX int8 pass over raw ``texts``, split into pretokenization, tokenization and
    alignment, the model (summed over the parallel workers), decoding and the rest (bookkeeping)."""
    import tagtune
    import tagtune.predict as predict_module

    tagger = tagtune.load(model_dir, backend="onnx", threads=threads, batch_size=batch_size)
    list(tagger.predict(texts[:32]))
    spent: dict[str, float] = defaultdict(float)

    def clocked(name: str, function: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    original = predict_module.pretokenize
    tagger.forward = clocked("model", tagger.forward)
    tagger.aligner.encode = clocked("tokenize_align", tagger.aligner.encode)
    tagger.decoder.decode_ids = clocked("decode", tagger.decoder.decode_ids)
    predict_module.pretokenize = clocked("pretokenize", original)
    try:
        start = time.perf_counter()
        list(tagger.predict(texts))
        total = time.perf_counter() - start
    finally:
        predict_module.pretokenize = original
    workers = max(1, tagger.workers)
    parts = {k: round(v, 4) for k, v in spent.items()}
    parts["model_wall_estimate"] = round(spent["model"] / workers, 4)
    parts["other"] = round(total - sum(v for k, v in spent.items() if k != "model") - spent["model"] / workers, 4)
    return {"total_s": round(total, 4), "workers": workers, "seconds": parts,
            "words_per_s": round(sum(len(t.split()) for t in texts) / total, 1)}


def measure_spacy(model: Path, examples: Sequence, threads: int, repeats: int) -> dict:
    import spacy
    import torch
    from bench_spacy import doc_tags, examples_to_docs

    from tagtune.metrics import score

    torch.set_num_threads(threads)
    nlp = spacy.load(model)

    def run() -> list:
        return [doc_tags(doc) for doc in nlp.pipe(examples_to_docs(examples, nlp.vocab, with_entities=False),
                                                  batch_size=1000)]

    predicted, seconds = timed(run, repeats)
    words = sum(len(e.tokens) for e in examples)
    return {"words_per_s": round(words / statistics.median(seconds), 1),
            "test_f1": round(score([list(e.tags) for e in examples], predicted)["f1"], 4),
            "spacy_version": spacy.__version__}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not (args.data / SPLIT_FILES["train"]).is_file():
        sys.exit(f"CoNLL-2003 .txt files not found in {args.data}")
    import torch
    from stamp import machine_stamp

    import tagtune
    from tagtune.cli import setup_logging
    from tagtune.progress import set_quiet

    setup_logging()
    set_quiet(True)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = read_splits(args.data, args.predict_samples)
    test = splits["test"]
    figures: dict[str, Any] = {"command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                               "machine": machine_stamp(), "threads": args.threads, "test_sentences": len(test),
                               "test_words": sum(len(e.tokens) for e in test),
                               "student_budget": ("given students" if args.students else
                                                  f"{args.steps} steps" if args.steps else f"{args.seconds:g} s"),
                               "labelled_samples": args.labelled_samples or len(splits["train"]), "models": {}}
    teacher = args.teacher or train_teacher(args)
    models: dict[str, tuple[Path, dict]] = {"teacher": (teacher, {"dir": str(teacher)})}
    for path in args.students or ():
        models[path.name] = (path, given_student(path))
    if not args.students:
        unlabelled = unlabelled_text(args, splits["train"])
        for layers in args.layers:
            for extra in (None, unlabelled) if unlabelled else (None,):
                path, record = distill_student(args, teacher, layers, extra)
                models[path.name] = (path, record)
    texts = [" ".join(e.tokens) for e in test]
    for name, (path, record) in models.items():
        onnx = export_int8(path)
        for label, folder, options in (
                ("torch_fp32_batch1", path, {"backend": "torch", "precision": "fp32", "batch_size": 1}),
                ("torch_fp32", path, {"backend": "torch", "precision": "fp32"}),
                ("onnx_int8_batch1", onnx, {"batch_size": 1}), ("onnx_int8", onnx, {})):
            record[label] = measure_tagger(
                lambda folder=folder, options=options: tagtune.load(folder, threads=args.threads, **options),
                test, args.repeats)
            print(json.dumps({name: {label: record[label]}}), flush=True)
        if name != "teacher":
            record["onnx_int8_time_breakdown"] = {
                "batch1": time_breakdown(onnx, texts, 1, args.threads),
                "large": time_breakdown(onnx, texts, None, args.threads)}
        figures["models"][name] = record
    if args.spacy_model:
        figures["spacy"] = measure_spacy(args.spacy_model, test, args.threads, args.repeats)
    # Each NAME_unlabelled student against NAME, the same distillation without the unlabelled text.
    figures["unlabelled_effect_f1_points"] = {
        name.removesuffix("_unlabelled"): round(100 * (record["onnx_int8"]["test_f1"] - figures["models"][
            name.removesuffix("_unlabelled")]["onnx_int8"]["test_f1"]), 2)
        for name, record in figures["models"].items()
        if name.endswith("_unlabelled") and name.removesuffix("_unlabelled") in figures["models"]}
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(figures))
    print(markdown(figures))
    return figures


def markdown(figures: dict) -> str:
    rows = [("| model | test F1 (ONNX int8) | test F1 (torch fp32) | words/s ONNX int8 batch 1 | large batches | "
            "words/s torch fp32 batch 1 | large batches |"), "|---|---|---|---|---|---|---|"]
    for name, r in figures["models"].items():
        rows.append(f"| {name} | {100 * r['onnx_int8']['test_f1']:.2f} | {100 * r['torch_fp32']['test_f1']:.2f} | "
                    f"{r['onnx_int8_batch1']['words_per_s']} | {r['onnx_int8']['words_per_s']} | "
                    f"{r['torch_fp32_batch1']['words_per_s']} | {r['torch_fp32']['words_per_s']} |")
    if "spacy" in figures:
        s = figures["spacy"]
        rows.append(f"| spaCy {s['spacy_version']} | {100 * s['test_f1']:.2f} | | | {s['words_per_s']} | | |")
    lines = rows + ["", (f"{figures['test_sentences']} test sentences ({figures['test_words']} words), "
                    f"{figures['threads']} threads, {figures['student_budget']} of distillation per student, "
                    f"{figures['labelled_samples']} labelled training sentences; CPU "
                    f"{figures['machine']['cpu']['model']} ({', '.join(figures['machine']['cpu']['features'])}).")]
    for k, points in figures.get("unlabelled_effect_f1_points", {}).items():
        lines.append(f"Unlabelled text, {k} (same budget): {points:+.2f} F1 points (ONNX int8).")
    for name, r in figures["models"].items():
        for size, b in r.get("onnx_int8_time_breakdown", {}).items():
            parts = ", ".join(f"{k} {v:.3f}" for k, v in b["seconds"].items())
            lines.append(f"Where the time goes, {name} ONNX int8 {size} (raw text, {b['total_s']:.3f} s, "
                         f"{b['workers']} workers): {parts}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
