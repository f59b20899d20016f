"""CoNLL-2003 as span data (issue 17): the same corpus through each annotation-tool format trains the same model.

Each sentence becomes a detokenized text (its words joined by single spaces, so every offset is known)
with its entities as character spans, written as span JSON lines (spaCy/Prodigy), a Label Studio export
and brat standoff files. The three readers must give the same words and tags (checked here, sentence by
sentence), so one training on the span data stands for all three; it is compared with the same recipe
trained on the CoNLL files (``--baseline``, a finished ``tagtune train`` output directory), test F1 on words
and on character spans.

    python benchmarks/bench_spans.py --baseline /path/to/conll-model --seed 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stamp import machine_stamp  # noqa: E402 - benchmarks/ is on sys.path only now

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003" / "json"


def to_spans(example) -> tuple[str, list[tuple[int, int, str]]]:
    """The sentence's text (words joined by spaces) and its entities as ``(start, end, type)`` characters."""
    from tagtune.labels import get_entities

    starts, position = [], 0
    for word in example.tokens:
        starts.append(position)
        position += len(word) + 1
    text = " ".join(example.tokens)
    spans = [(starts[s.start], starts[s.end - 1] + len(example.tokens[s.end - 1]), s.type)
             for s in get_entities(list(example.tags))]
    return text, spans


def write_formats(examples, folder: Path, split: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    records = [to_spans(e) for e in examples]
    jsonl = folder / f"{split}.jsonl"
    jsonl.write_text("".join(json.dumps({"id": str(i), "text": text, "spans": [
        {"start": s, "end": e, "label": label} for s, e, label in spans]}) + "\n"
        for i, (text, spans) in enumerate(records)), encoding="utf-8")
    studio = folder / f"{split}.labelstudio.json"
    studio.write_text(json.dumps([{"id": i, "data": {"text": text}, "annotations": [{"id": i, "result": [
        {"id": f"r{i}-{k}", "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
        for k, (s, e, label) in enumerate(spans)]}]} for i, (text, spans) in enumerate(records)]), encoding="utf-8")
    brat = folder / f"{split}.brat"
    brat.mkdir(exist_ok=True)
    text = "\n".join(t for t, _ in records) + "\n"
    offset, lines = 0, []
    for line_text, spans in records:
        lines += [(offset + s, offset + e, label, line_text[s:e]) for s, e, label in spans]
        offset += len(line_text) + 1
    (brat / "conll.txt").write_text(text, encoding="utf-8")
    (brat / "conll.ann").write_text("".join(f"T{k + 1}\t{label} {s} {e}\t{surface}\n"
                                            for k, (s, e, label, surface) in enumerate(lines)), encoding="utf-8")
    return {"spans": jsonl, "labelstudio": studio, "brat": brat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="tagtune train output on the CoNLL JSON files (same recipe)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "spans")
    parser.add_argument("--epochs", default="1")
    args = parser.parse_args()

    from tagtune.config import DataConfig
    from tagtune.readers import read_corpus
    from tagtune.run import prepare_data

    figures: dict = {"command": " ".join(sys.argv), "stamp": machine_stamp()}
    files: dict[str, dict[str, Path]] = {}
    words_of: dict[str, dict[str, list]] = {}
    for split, name in (("train", "train.json"), ("validation", "validation.json"), ("test", "test.json")):
        examples = prepare_data(DataConfig(test_file=args.data / name)).corpus.splits["test"]
        files[split] = write_formats(examples, args.out / "data", split)
        for fmt, path in files[split].items():
            read = read_corpus(DataConfig(test_file=path, format=fmt)).splits["test"]
            words_of.setdefault(fmt, {})[split] = [(e.tokens, e.tags) for e in read]
        same = words_of["spans"][split] == words_of["labelstudio"][split] == words_of["brat"][split]
        resplit = sum(1 for (tokens, _), e in zip(words_of["spans"][split], examples, strict=True) if tokens != e.tokens)
        figures[f"{split}_formats_identical"] = same
        figures[f"{split}_sentences"] = len(examples)
        figures[f"{split}_sentences_pretokenized_differently"] = resplit
        print(split, "formats identical:", same, "| sentences whose words differ from CoNLL's:", resplit)
    if not all(figures[f"{s}_formats_identical"] for s in ("train", "validation", "test")):
        sys.exit("the three span readers disagree: see figures")

    out = args.out / "model"
    start = time.perf_counter()
    subprocess.run(["tagtune", "train", "--quiet", "-o", str(out), "--overwrite_output_dir", "--train_file",
                    str(files["train"]["spans"]), "--validation_file", str(files["validation"]["spans"]),
                    "--test_file", str(files["test"]["spans"]), "--num_train_epochs", args.epochs,
                    "--per_device_train_batch_size", "32", "--learning_rate", "5e-5", "--seed", str(args.seed)],
                   check=True)
    figures["span_data_train_wall_s"] = round(time.perf_counter() - start, 1)
    spans_results = json.loads((out / "all_results.json").read_text())
    baseline = json.loads((Path(args.baseline) / "all_results.json").read_text())
    figures["conll_files"] = {k: baseline[k] for k in ("predict_f1", "eval_f1", "train_runtime") if k in baseline}
    figures["span_data"] = {k: spans_results[k] for k in ("predict_f1", "predict_span_f1", "eval_f1", "eval_span_f1",
                                                          "train_runtime") if k in spans_results}
    figures["test_f1_difference_points"] = round(100 * (spans_results["predict_f1"] - baseline["predict_f1"]), 2)
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
