"""The upstream ``run_ner_no_trainer.py`` flags, verbatim, mapped onto tagtune's typed configs.

``examples/token-classification/run_ner_no_trainer.py`` and ``tagtune train --engine accelerate`` parse
with :func:`parse_loop_args`. Upstream flags keep their names, types and defaults; tagtune's additions
(``--test_file``, ``--mixed_precision``, windows, document context, ``--crf``, decoding, label files,
safety switches) follow them, with the same meaning as the Trainer engine's flags of the same name.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from tagtune.batching import SUBTOKENS_PER_SENTENCE, resolve_batching
from tagtune.config import AlignConfig, DataConfig, EvalConfig, ModelConfig
from tagtune.errors import ConfigError

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
DEBUG_SAMPLES = 100  # upstream --debug keeps the first 100 sentences of each split


@dataclass(frozen=True)
class LoopConfig:
    """How the bare loop trains, checkpoints and logs (the data/model/align/eval slices live elsewhere).

    Attributes:
        num_train_epochs: Epochs; a fraction trains that share of the last epoch.
        max_train_steps: Optimizer steps; overrides ``num_train_epochs`` when set.
        checkpointing_steps: Save every N optimizer steps, ``"epoch"`` after each epoch, or never.
        resume_from_checkpoint: ``latest`` (newest complete checkpoint in ``output_dir``) or a path.
        mixed_precision: ``no``, ``fp16`` or ``bf16``; ``None`` takes accelerate's config / launcher.
        cpu: Train on CPU even when a GPU is visible (as ``accelerate launch --cpu``).
        logging_steps: Optimizer steps between two tracker logs of loss, learning rate and throughput.
        max_tokens_per_batch: Token-budget batches of at most this many padded sub-tokens (0: batches of
            ``per_device_train_batch_size`` sentences in ``train_sampling_strategy`` order).
        train_sampling_strategy: ``random`` (upstream) or ``group_by_length`` sentence-count batches.
        max_train_seconds: Train for this many seconds of this process's training time: the learning
            rate decays linearly with time to 0 and training stops then (or at the step limit if sooner).
    """

    output_dir: Path
    per_device_train_batch_size: int = 8
    max_tokens_per_batch: int = 0
    train_sampling_strategy: str = "random"
    max_train_seconds: float | None = None
    per_device_eval_batch_size: int = 8
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3
    max_train_steps: int | None = None
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "linear"
    num_warmup_steps: int = 0
    seed: int | None = None
    checkpointing_steps: int | str | None = None
    resume_from_checkpoint: str | None = None
    with_tracking: bool = False
    report_to: str = "all"
    mixed_precision: str | None = None
    cpu: bool = False
    overwrite_output_dir: bool = False
    logging_steps: int = 10
    model_type: str | None = None

    def total_steps(self, batches_per_epoch: int) -> tuple[int, int]:
        """``(optimizer steps, epochs)`` for ``batches_per_epoch`` batches per process and epoch.

        >>> LoopConfig(Path("out"), num_train_epochs=2, gradient_accumulation_steps=2).total_steps(5)
        (6, 2)
        >>> LoopConfig(Path("out"), max_train_steps=4, gradient_accumulation_steps=2).total_steps(5)
        (4, 2)
        >>> LoopConfig(Path("out"), num_train_epochs=1.5).total_steps(4)
        (6, 2)
        """
        per_epoch = max(1, math.ceil(batches_per_epoch / self.gradient_accumulation_steps))
        steps = self.max_train_steps or math.ceil(self.num_train_epochs * per_epoch)
        return steps, math.ceil(steps / per_epoch)


def _boolean(value: str) -> bool:
    """``true/false`` spellings as HfArgumentParser reads them, so both engines take the same values."""
    if value.lower() in ("true", "1", "yes", "y", "t"):
        return True
    if value.lower() in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block and exits; tagtune's promise is one line, exit 2."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message}; see --help for the flags")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        description="Fine-tune a token classification model (NER, POS, chunking) with a plain Accelerate loop.")
    add = parser.add_argument
    # Upstream flags, in upstream's order and with its defaults.
    add("--dataset_name", type=str, default=None, help="Hub data set name (datasets.load_dataset).")
    add("--dataset_config_name", type=str, default=None, help="Hub data set configuration.")
    add("--train_file", type=str, default=None, help="CoNLL, CoNLL-U, JSON(L) or CSV training file.")
    add("--validation_file", type=str, default=None, help="Validation file (same formats).")
    add("--text_column_name", type=str, default=None, help="Column of the words (default tokens).")
    add("--label_column_name", type=str, default=None, help="Column of the tags (default {task}_tags).")
    add("--max_length", type=int, default=128,
        help="Longest model input in sub-tokens; longer sentences are windowed, never truncated.")
    add("--pad_to_max_length", action="store_true", help="Pad every batch to --max_length.")
    add("--model_name_or_path", type=str, default=None, help="Local model directory (or hub name when online).")
    add("--config_name", type=str, default=None, help="Config name or path if not the model's.")
    add("--tokenizer_name", type=str, default=None, help="Tokenizer name or path if not the model's.")
    add("--per_device_train_batch_size", type=int, default=8, help="Training batch size per process.")
    add("--per_device_eval_batch_size", type=int, default=8, help="Evaluation batch size per process.")
    add("--max_tokens_per_batch", type=int, default=None,
        help=f"Training batches of at most this many padded sub-tokens instead of a sentence count. Default: "
             f"{SUBTOKENS_PER_SENTENCE} x --per_device_train_batch_size unless --group_by_length is given; "
             "0 = sentence-count batches in upstream's random order.")
    add("--group_by_length", type=_boolean, nargs="?", const=True, default=None,
        help="True: length-grouped sentence-count batches; False: upstream's random batches.")
    add("--train_sampling_strategy", type=str, default=None, choices=["random", "group_by_length"],
        help="Sentence-count batches in this order (as the Trainer engine's flag).")
    add("--learning_rate", type=float, default=5e-5, help="Peak learning rate.")
    add("--weight_decay", type=float, default=0.0, help="AdamW weight decay (not on biases and LayerNorm).")
    add("--max_grad_norm", type=float, default=1.0,
        help="Clip the gradient norm to this before each step, as the Trainer does (0: no clipping, as upstream).")
    add("--num_train_epochs", type=float, default=3, help="Training epochs (a fraction trains part of the last).")
    add("--max_train_steps", type=int, default=None, help="Optimizer steps; overrides --num_train_epochs.")
    add("--gradient_accumulation_steps", type=int, default=1, help="Batches per optimizer step.")
    add("--lr_scheduler_type", type=str, default="linear", choices=SCHEDULERS, help="Learning-rate schedule.")
    add("--num_warmup_steps", type=int, default=0, help="Warm-up optimizer steps.")
    add("--output_dir", type=str, default=None, help="Where the model, results and checkpoints go (required).")
    add("--seed", type=int, default=None, help="Seed for weights, dropout and batch order (random when unset).")
    add("--model_type", type=str, default=None, help="Model type when training from scratch (needs --tokenizer_name).")
    add("--label_all_tokens", action="store_true", help="Label every sub-token, not only the first.")
    add("--return_entity_level_metrics", action="store_true", help="Report metrics per entity type.")
    add("--task_name", type=str.lower, default="ner", choices=["ner", "pos", "chunk"], help="Which tags to read.")
    add("--debug", action="store_true", help=f"Use only the first {DEBUG_SAMPLES} sentences of each split.")
    add("--push_to_hub", action="store_true", help="Not supported offline; refused.")
    add("--hub_model_id", type=str, default=None, help="Accepted for compatibility (see --push_to_hub).")
    add("--hub_token", type=str, default=None, help="Token for private hub models and data sets.")
    add("--trust_remote_code", action="store_true", help="Run code shipped with the model.")
    add("--checkpointing_steps", type=str, default=None,
        help="Save a resumable checkpoint every N optimizer steps, or 'epoch' after each epoch.")
    add("--resume_from_checkpoint", type=str, default=None,
        help="'latest' (newest complete checkpoint in --output_dir) or a checkpoint directory.")
    add("--with_tracking", action="store_true", help="Log to experiment trackers (see --report_to).")
    add("--report_to", type=str, default="all", help="tensorboard, wandb, ... or all (installed ones).")
    add("--ignore_mismatched_sizes", action="store_true", help="Replace a head with other labels.")
    # tagtune additions.
    add("--test_file", type=str, default=None, help="Test file: predict_results.json and predictions.txt.")
    add("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"],
        help="Default: accelerate's config or launcher flag. bf16 works on CPU, fp16 needs a GPU.")
    add("--cpu", action="store_true", help="Train on CPU even when a GPU is visible.")
    add("--overwrite_output_dir", action="store_true", help="Write into a non-empty --output_dir.")
    add("--logging_steps", type=int, default=10, help="Optimizer steps between tracker logs.")
    add("--max_train_samples", type=int, default=None, help="Use only the first N training sentences.")
    add("--max_eval_samples", type=int, default=None, help="Use only the first N validation sentences.")
    add("--max_predict_samples", type=int, default=None, help="Use only the first N test sentences.")
    add("--stride", type=int, default=None, help="Sub-tokens shared by consecutive windows of a long sentence.")
    add("--context_size", type=int, default=0,
        help="Sub-tokens of document context each side (neighbouring sentences of the same document; never "
             "labelled or predicted).")
    add("--document_context", action="store_true",
        help="Fill each window with document context: --context_size up to --max_length.")
    add("--crf", action="store_true",
        help="Linear-chain CRF over the words on top of the encoder, trained with the sequence likelihood, "
             "decoded with Viterbi.")
    add("--decoding", type=str, default="viterbi", choices=["viterbi", "argmax"], help="How word scores become tags.")
    add("--label_names_file", type=str, default=None, help="JSON naming integer tag ids.")
    add("--data_format", type=str, default="auto", choices=["auto", "conll", "conllu", "json", "jsonl", "csv"],
        help="Data file format (default: detected).")
    add("--label_column", type=int, default=None, help="Tag column index in CoNLL files.")
    add("--conllu_tag", type=str, default="upos", choices=["upos", "xpos"], help="Tag column of CoNLL-U files.")
    add("--strict_labels", action="store_true", help="Refuse invalid IOB sequences instead of repairing them.")
    add("--allow_pickle", action="store_true", help="Accept pickled .bin/.pt weights (unsafe).")
    add("--cache_dir", type=str, default=None, help="Cache directory for hub models and data sets.")
    add("--max_train_seconds", type=float, default=None,
        help="Train for this wall time: the learning rate decays linearly with time to 0 and training stops then "
             "(or at the end of --num_train_epochs / --max_train_steps if sooner); as run_ner.py's flag.")
    add("--overwrite_cache", action="store_true",
        help="Tokenize again instead of reusing the cached tokenization (as run_ner.py's flag).")
    add("--model_revision", type=str, default="main", help="Model version (branch, tag or commit).")
    add("--verbose", action="store_true", help="Show the traceback of an error (read by tagtune.cli.run_guarded).")
    return parser


@dataclass(frozen=True)
class LoopArgs:
    """Every slice the loop needs, each a frozen config."""

    data: DataConfig
    model: ModelConfig
    align: AlignConfig
    eval: EvalConfig
    loop: LoopConfig
    strict_labels: bool = False


def parse_loop_args(argv: list[str] | None = None) -> LoopArgs:
    """Parse upstream ``run_ner_no_trainer.py`` flags (plus tagtune's) into typed configs.

    Raises:
        ConfigError: Contradictory or unsupported flags (say which and how to fix them).
    """
    ns = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return to_loop_args(ns)


def _checkpointing(value: str | None) -> int | str | None:
    if value is None or value == "":
        return None
    if value == "epoch":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ConfigError(f"--checkpointing_steps '{value}' must be a positive number of steps or 'epoch'")


def to_loop_args(ns: argparse.Namespace) -> LoopArgs:
    """Typed configs from parsed flags (kept apart so a caller can build the namespace itself)."""
    if ns.push_to_hub:
        raise ConfigError("--push_to_hub is not supported (the hub is not reachable); upload --output_dir yourself")
    if not ns.output_dir:
        raise ConfigError("--output_dir is required: the model, results and checkpoints are written there")
    if not ns.model_name_or_path and not (ns.model_type and ns.tokenizer_name):
        raise ConfigError("pass --model_name_or_path, or --model_type with --tokenizer_name to train from scratch")
    if not ns.dataset_name and not ns.train_file:
        raise ConfigError("no training data: pass --train_file or --dataset_name")
    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "logging_steps"):
        if getattr(ns, flag) < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {getattr(ns, flag)}")
    if ns.max_train_steps is not None and ns.max_train_steps < 1:
        raise ConfigError(f"--max_train_steps must be at least 1, got {ns.max_train_steps}")
    if ns.max_train_seconds is not None and not ns.max_train_seconds > 0:
        raise ConfigError(f"--max_train_seconds must be positive, got {ns.max_train_seconds}")
    if ns.max_train_steps is None and ns.num_train_epochs <= 0:
        raise ConfigError(f"--num_train_epochs must be positive, got {ns.num_train_epochs}")
    if ns.context_size < 0:
        raise ConfigError(f"--context_size {ns.context_size} must be 0 or more")
    if ns.crf and ns.label_all_tokens:
        # The same refusal as the Trainer engine's, but before any data is read.
        raise ConfigError("--crf scores words (first sub-tokens) and cannot be combined with "
                          "--label_all_tokens; drop one of them")

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    def limit(value: int | None) -> int | None:
        return min(value, DEBUG_SAMPLES) if ns.debug and value else (DEBUG_SAMPLES if ns.debug else value)

    data = DataConfig(
        dataset_name=ns.dataset_name, dataset_config_name=ns.dataset_config_name, train_file=path(ns.train_file),
        validation_file=path(ns.validation_file), test_file=path(ns.test_file), format=ns.data_format,
        task_name=ns.task_name, text_column_name=ns.text_column_name, label_column_name=ns.label_column_name,
        label_column=ns.label_column, label_names_file=path(ns.label_names_file), conllu_tag=ns.conllu_tag,
        cache_dir=path(ns.cache_dir), overwrite_cache=ns.overwrite_cache, max_train_samples=limit(ns.max_train_samples),
        max_eval_samples=limit(ns.max_eval_samples), max_predict_samples=limit(ns.max_predict_samples),
    )
    model = ModelConfig(
        model_name_or_path=ns.model_name_or_path or "", config_name=ns.config_name, tokenizer_name=ns.tokenizer_name,
        cache_dir=ns.cache_dir, model_revision=ns.model_revision, token=ns.hub_token,
        trust_remote_code=ns.trust_remote_code, ignore_mismatched_sizes=ns.ignore_mismatched_sizes,
        allow_pickle=ns.allow_pickle, crf=ns.crf,
    )
    # As the Trainer engine: the aligner gives each side at most half the room a sentence leaves, so a
    # context of --max_length fills the window. The resolved size is what tagtune_config.json records.
    context_size = max(ns.context_size, ns.max_length) if ns.document_context else ns.context_size
    align = AlignConfig(max_length=ns.max_length, stride=ns.stride, label_all_tokens=ns.label_all_tokens,
                        pad_to_max_length=ns.pad_to_max_length, context_size=context_size)
    evaluation = EvalConfig(batch_size=ns.per_device_eval_batch_size, decoding=ns.decoding,
                            return_entity_level_metrics=ns.return_entity_level_metrics)
    max_tokens, sampling = resolve_batching(ns.per_device_train_batch_size, ns.max_tokens_per_batch,
                                            ns.group_by_length, ns.train_sampling_strategy)
    loop = LoopConfig(
        output_dir=Path(ns.output_dir), per_device_train_batch_size=ns.per_device_train_batch_size,
        max_tokens_per_batch=max_tokens, train_sampling_strategy=sampling, max_train_seconds=ns.max_train_seconds,
        per_device_eval_batch_size=ns.per_device_eval_batch_size, learning_rate=ns.learning_rate,
        weight_decay=ns.weight_decay, max_grad_norm=ns.max_grad_norm, num_train_epochs=ns.num_train_epochs, max_train_steps=ns.max_train_steps,
        gradient_accumulation_steps=ns.gradient_accumulation_steps, lr_scheduler_type=ns.lr_scheduler_type,
        num_warmup_steps=ns.num_warmup_steps, seed=ns.seed, checkpointing_steps=_checkpointing(ns.checkpointing_steps),
        resume_from_checkpoint=ns.resume_from_checkpoint or None, with_tracking=ns.with_tracking,
        report_to=ns.report_to, mixed_precision=ns.mixed_precision, cpu=ns.cpu,
        overwrite_output_dir=ns.overwrite_output_dir, logging_steps=ns.logging_steps, model_type=ns.model_type,
    )
    return LoopArgs(data, model, align, evaluation, loop, strict_labels=ns.strict_labels)
