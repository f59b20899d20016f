"""Prediction speed and accuracy: transformers' pipeline against tagtune (torch and ONNX int8).

One run measures, on the first N CoNLL-2003 test sentences given as plain text (words joined by
spaces), end to end from strings to entities (tokenization, forward, aggregation; model loading
excluded):

- ``pipeline_bs1`` / ``pipeline_bs32``: ``transformers.pipeline("token-classification",
  aggregation_strategy="simple")`` called on the list of texts with ``batch_size`` 1 and 32;
- ``tagtune``: ``tagtune.load(model)`` defaults (``precision="auto"``: int8 on CPUs with VNNI);
- ``tagtune_fp32``: the same with ``precision="fp32"`` (``tagtune_int8``: ``precision="int8"``, optional);
- ``tagtune_onnx_int8``: the ONNX export with dynamic int8 quantization (``tagtune export --quantize int8``).

Timed runs of the variants are interleaved (round robin) so that a load change on a shared machine
hits every variant alike; the median over the repeats is reported with min and max. Then the entity
F1 (seqeval default mode) of each tagtune variant on the whole test set (pre-split words) is compared
with fp32.

CLI::

    python benchmarks/bench_predict.py --model benchmarks/out/minilm-conll \\
        --output benchmarks/out/bench_predict.json

``--model untrained`` builds the packaged MiniLM with a random CoNLL head (speed only: its F1 is noise).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "benchmarks" / "out" / "minilm-conll"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "conll2003" / "test.txt"
CONLL_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

logger = logging.getLogger("bench_predict")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="fine-tuned model directory, or 'untrained'")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CoNLL-2003 test.txt")
    parser.add_argument("--sentences", type=int, default=1000, help="sentences timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--variants", default="pipeline_bs1,pipeline_bs32,tagtune,tagtune_fp32,tagtune_onnx_int8")
    parser.add_argument("--onnx_dir", type=Path, default=None, help="existing export (default: export to a temp dir)")
    parser.add_argument("--skip_f1", action="store_true", help="speed only")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for every variant (default: torch's)")
    parser.add_argument("--output", type=Path, default=None, help="write the figures here as JSON")
    return parser.parse_args(argv)


def load_sentences(path: Path) -> list[Any]:
    from tagtune.config import DataConfig
    from tagtune.readers import read_file

    examples, _ = read_file(path, DataConfig(), split="test")
    return examples


def untrained_model(folder: Path) -> Path:
    """The packaged MiniLM with a random CoNLL head and named labels (for speed runs only)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tagtune.defaults import packaged_model_dir

    torch.manual_seed(0)
    source = packaged_model_dir()
    model = AutoModelForTokenClassification.from_pretrained(
        source, num_labels=len(CONLL_LABELS), id2label=dict(enumerate(CONLL_LABELS)),
        label2id={label: i for i, label in enumerate(CONLL_LABELS)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def cpu_info() -> dict[str, Any]:
    import onnxruntime
    import torch
    import transformers

    flags = ""
    model = platform.processor()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu": model, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "avx512_vnni": "avx512_vnni" in flags,
        "torch": torch.__version__, "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__,
        "python": sys.version.split()[0], "load_average": os.getloadavg(),
    }


def build_variants(names: list[str], model_dir: Path, onnx_dir: Path | None,
                   threads: int | None = None) -> dict[str, Callable[[list[str]], Any]]:
    """Name -> function tagging a list of texts end to end (models loaded once, here)."""
    import tagtune

    runners: dict[str, Callable[[list[str]], Any]] = {}
    if any(n.startswith("pipeline") for n in names):
        from transformers import pipeline

        pipe = pipeline("token-classification", model=str(model_dir), aggregation_strategy="simple", device="cpu")
        for batch in (1, 32):
            if f"pipeline_bs{batch}" in names:
                runners[f"pipeline_bs{batch}"] = lambda texts, b=batch: pipe(texts, batch_size=b)
    if "tagtune" in names:
        default = tagtune.load(model_dir)
        logger.info("tagtune default path: %s %s", default.backend, default.precision)
        runners["tagtune"] = lambda texts: list(default.predict(texts))
    if "tagtune_fp32" in names:
        fp32 = tagtune.load(model_dir, precision="fp32")
        runners["tagtune_fp32"] = lambda texts: list(fp32.predict(texts))
    if "tagtune_int8" in names:
        int8_torch = tagtune.load(model_dir, precision="int8")
        runners["tagtune_int8"] = lambda texts: list(int8_torch.predict(texts))
    if "tagtune_onnx_int8" in names:
        assert onnx_dir is not None
        int8 = tagtune.load(onnx_dir, backend="onnx", threads=threads)
        assert int8.precision == "int8", int8.precision
        runners["tagtune_onnx_int8"] = lambda texts: list(int8.predict(texts))
    return runners


def time_variants(runners: dict[str, Callable], texts: list[str], words: int, repeats: int) -> dict[str, dict]:
    warm = texts[:64]
    for _name, run in runners.items():
        run(warm)
        run(warm)
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(repeats):
        for name, run in runners.items():
            started = time.perf_counter()
            run(texts)
            seconds[name].append(time.perf_counter() - started)
            logger.info("round %d %-18s %.2fs (%.1f sentences/s)", round_ + 1, name, seconds[name][-1],
                        len(texts) / seconds[name][-1])
    figures = {}
    for name, values in seconds.items():
        median = statistics.median(values)
        figures[name] = {
            "seconds": [round(v, 3) for v in values], "median_seconds": round(median, 3),
            "sentences_per_s": round(len(texts) / median, 1), "words_per_s": round(words / median, 1),
            "sentences_per_s_min": round(len(texts) / max(values), 1),
            "sentences_per_s_max": round(len(texts) / min(values), 1),
        }
    return figures


def ratios_of(speed: dict[str, dict], key: str) -> dict[str, float]:
    """tagtune's default path against both pipelines, and ONNX int8 against tagtune fp32."""
    pairs = [("tagtune", "pipeline_bs1"), ("tagtune", "pipeline_bs32"), ("tagtune_onnx_int8", "tagtune_fp32"),
             ("tagtune_fp32", "pipeline_bs32")]
    return {f"{a}_vs_{b}": round(speed[a][key] / speed[b][key], 2) for a, b in pairs if a in speed and b in speed}


def f1_scores(model_dir: Path, onnx_dir: Path | None, examples: list[Any], names: list[str]) -> dict[str, Any]:
    """Entity F1 on the whole test set (pre-split words) of each tagtune variant, and its gap to fp32."""
    import tagtune
    from tagtune.metrics import EntityScorer

    variants = {"tagtune_fp32": lambda: tagtune.load(model_dir, precision="fp32")}
    if "tagtune" in names:
        variants["tagtune"] = lambda: tagtune.load(model_dir)
    if "tagtune_int8" in names:
        variants["tagtune_int8"] = lambda: tagtune.load(model_dir, precision="int8")
    if "tagtune_onnx_int8" in names and onnx_dir is not None:
        variants["tagtune_onnx_int8"] = lambda: tagtune.load(onnx_dir, backend="onnx")
    results: dict[str, Any] = {}
    gold = [list(e.tags) for e in examples]
    for name, make in variants.items():
        tagger = make()
        started = time.perf_counter()
        predicted = [p.tags for p in tagger.predict_words([e.tokens for e in examples])]
        scorer = EntityScorer()
        scorer.update(gold, predicted)
        result = scorer.result()
        f1 = result.get("f1", result.get("overall_f1"))
        results[name] = {"precision_mode": tagger.precision, "f1": round(100 * float(f1), 2),
                         "seconds": round(time.perf_counter() - started, 2)}
        logger.info("F1 %-18s %.2f", name, results[name]["f1"])
    reference = results["tagtune_fp32"]["f1"]
    for name in results:
        results[name]["f1_minus_fp32"] = round(results[name]["f1"] - reference, 2)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    args = parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = untrained_model(Path(tmp) / "untrained") if args.model == "untrained" else Path(args.model)
        if not model_dir.is_dir():
            raise SystemExit(f"model '{model_dir}' not found; fine-tune one or pass --model untrained")
        onnx_dir = args.onnx_dir
        export_report = None
        if "tagtune_onnx_int8" in names and onnx_dir is None:
            from tagtune.export import ExportConfig, export_onnx

            onnx_dir = Path(tmp) / "onnx"
            export_report = export_onnx(model_dir, onnx_dir, ExportConfig(quantize="int8"))
        examples = load_sentences(args.data)
        timed = examples[: args.sentences]
        texts = [" ".join(e.tokens) for e in timed]
        words = sum(len(e.tokens) for e in timed)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        info = cpu_info()
        logger.info("%d sentences, %d words; %s", len(texts), words, info)
        runners = build_variants(names, model_dir, onnx_dir, args.threads)
        speed = time_variants(runners, texts, words, args.repeats)
        report: dict[str, Any] = {
            "model": str(args.model), "data": str(args.data), "sentences": len(texts), "words": words,
            "repeats": args.repeats, "device": info, "speed": speed,
        }
        # Medians are the figures; ratios of the best runs (least disturbed by other processes on a
        # shared machine) are reported beside them.
        report["ratios"] = ratios_of(speed, "sentences_per_s")
        report["ratios_best_runs"] = ratios_of(speed, "sentences_per_s_max")
        if export_report is not None:
            report["export"] = {k: export_report[k] for k in ("size_mb", "parity", "export_seconds")}
        if not args.skip_f1:
            report["f1"] = f1_scores(model_dir, onnx_dir, examples, names)
        report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
