"""Evaluation memory: peak RSS of evaluating 3,000 and 30,000 sentences, each in its own process.

tagtune evaluates in one streaming pass (length-sorted batches, word scores reassembled and decoded
batch by batch, only tags kept), so peak memory should not grow with the number of sentences. For the
reference, the same is measured for the Trainer's own ``predict`` (which keeps every logit).

Engines: ``tagtune`` (``evaluate_examples``, as ``tagtune evaluate``), ``pipeline`` (``tagtune.run.evaluate``
with an ``Accelerator``: what both training engines, the Trainer's and the bare loop's, call at every
evaluation), ``trainer`` (the reference).

    python benchmarks/bench_eval_memory.py --model benchmarks/out/train/tagtune
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from stamp import machine_stamp

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"

CHILD = r'''
import itertools, json, sys, time, resource
import torch
torch.set_num_threads(2)
from tagtune.checkpoint import load_checkpoint
from tagtune.config import DataConfig
from tagtune.decode import Decoder
from tagtune.evaluate import evaluate_examples
from tagtune.inference import model_forward
from tagtune.run import prepare_data
from pathlib import Path
model, count, engine = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = Path(sys.argv[4])
splits = [prepare_data(DataConfig(test_file=data / name)).corpus.splits["test"] for name in ("train.json", "validation.json", "test.json")]
pool = [e for split in splits for e in split]
examples = list(itertools.islice(itertools.cycle(pool), count))
ck = load_checkpoint(model)
start = time.perf_counter()
if engine == "tagtune":
    result = evaluate_examples(model_forward(ck.model), ck.aligner(), examples, Decoder(ck.labels, ck.scheme, "viterbi"), batch_size=32)
    f1 = result.metrics["f1"]
elif engine == "pipeline":  # both training engines: tagtune.run.evaluate under their accelerator
    from accelerate import Accelerator
    from tagtune.config import EvalConfig, ModelConfig, RunConfig
    from tagtune.corpus import Corpus
    from tagtune.run import PreparedData, Run, evaluate
    config = RunConfig(DataConfig(), ModelConfig(model), ck.align, EvalConfig(batch_size=32))
    data = PreparedData(Corpus(splits={"validation": examples}), ck.scheme, ck.labels)
    run = Run(config, data, ck.tokenizer, ck.model, ck.labels, ck.aligner(), Decoder(ck.labels, ck.scheme, "viterbi"))
    result, metrics = evaluate(run, ck.model, "validation", "eval", accelerator=Accelerator(cpu=True))
    f1 = metrics["eval_f1"]
else:  # the Trainer's predict: every logit of every window kept until the end
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments
    enc = ck.aligner().encode(examples)
    ds = Dataset.from_dict({"input_ids": enc.input_ids})
    trainer = Trainer(model=ck.model, args=TrainingArguments(output_dir="/tmp/bench-mem", per_device_eval_batch_size=32, report_to="none", disable_tqdm=True),
                      data_collator=DataCollatorForTokenClassification(ck.tokenizer))
    out = trainer.predict(ds)
    f1 = float("nan")
print(json.dumps({"sentences": count, "engine": engine, "seconds": round(time.perf_counter() - start, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "f1": f1}))
'''


def measure(model: str, count: int, engine: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(count), engine, str(DATA / "json")],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode != 0:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a fine-tuned model directory")
    parser.add_argument("--counts", default="3000,30000")
    parser.add_argument("--engines", default="tagtune,pipeline,trainer")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "eval_memory.json")
    args = parser.parse_args()
    rows = [measure(args.model, int(c), e) for e in args.engines.split(",") for c in args.counts.split(",")]
    figures = {"command": " ".join(sys.argv), "stamp": machine_stamp(), "runs": rows}
    for engine in args.engines.split(","):
        small, large = [r for r in rows if r["engine"] == engine][:2]
        figures[f"{engine}_rss_growth"] = round(large["peak_rss_mb"] / small["peak_rss_mb"] - 1, 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
