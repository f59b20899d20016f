"""The upstream ``run_ner.py`` command-line flags, verbatim, mapped onto tagtune's typed configs.

``examples/token-classification/run_ner.py`` and ``tagtune train`` both parse with these dataclasses
through ``transformers.HfArgumentParser``, so a flag means the same thing everywhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from transformers import HfArgumentParser, TrainingArguments

from tagtune.batching import SUBTOKENS_PER_SENTENCE, resolve_batching
from tagtune.config import AlignConfig, DataConfig, EvalConfig, ModelConfig
from tagtune.errors import ConfigError


@dataclass
class ModelArguments:
    """Upstream model flags plus tagtune's safety switches."""

    model_name_or_path: str = field(metadata={"help": "Local model directory (or hub name when online)."})
    config_name: str | None = field(default=None, metadata={"help": "Config name or path if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache downloaded models."})
    model_revision: str = field(default="main", metadata={"help": "Model version (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code shipped with the model."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Replace a head with other labels."})
    allow_pickle: bool = field(default=False, metadata={"help": "Accept pickled .bin/.pt weights (unsafe)."})
    crf: bool = field(default=False, metadata={"help": "Linear-chain CRF over the words on top of the encoder, "
                                                       "trained with the sequence likelihood, decoded with Viterbi."})

    def to_config(self) -> ModelConfig:
        return ModelConfig(
            model_name_or_path=self.model_name_or_path, config_name=self.config_name,
            tokenizer_name=self.tokenizer_name, cache_dir=self.cache_dir, model_revision=self.model_revision,
            token=self.token, trust_remote_code=self.trust_remote_code,
            ignore_mismatched_sizes=self.ignore_mismatched_sizes, allow_pickle=self.allow_pickle, crf=self.crf,
        )


@dataclass
class DataTrainingArguments:
    """Upstream data flags plus tagtune's reader, window and decoding options."""

    task_name: str = field(default="ner", metadata={"help": "ner, pos or chunk.", "choices": ["ner", "pos", "chunk"]})
    dataset_name: str | None = field(default=None, metadata={"help": "Hub data set name."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub data set configuration."})
    train_file: str | None = field(default=None, metadata={"help": "CoNLL, CoNLL-U, JSON(L) or CSV file."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file (same formats)."})
    test_file: str | None = field(default=None, metadata={"help": "Test file (same formats)."})
    text_column_name: str | None = field(default=None, metadata={"help": "Column of the words."})
    label_column_name: str | None = field(default=None, metadata={"help": "Column of the tags."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Ignore cached preprocessing."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Preprocessing processes."})
    max_seq_length: int = field(default=128, metadata={"help": "Longest model input in sub-tokens; longer sentences are windowed, never truncated."})
    pad_to_max_length: bool = field(default=False, metadata={"help": "Pad every input to max_seq_length."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training sentences."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation sentences."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test sentences."})
    label_all_tokens: bool = field(default=False, metadata={"help": "Label every sub-token, not only the first."})
    return_entity_level_metrics: bool = field(default=False, metadata={"help": "Report metrics per entity type."})
    # tagtune additions
    data_format: str = field(default="auto", metadata={"help": "auto, conll, conllu, json, jsonl or csv.",
                                                       "choices": ["auto", "conll", "conllu", "json", "jsonl", "csv"]})
    label_names_file: str | None = field(default=None, metadata={"help": "JSON naming integer tag ids."})
    label_column: int | None = field(default=None, metadata={"help": "Tag column index in CoNLL files."})
    conllu_tag: str = field(default="upos", metadata={"help": "upos or xpos for CoNLL-U.", "choices": ["upos", "xpos"]})
    stride: int | None = field(default=None, metadata={"help": "Sub-tokens shared by consecutive windows (default: a quarter of the window, at most 32)."})
    context_size: int = field(default=0, metadata={"help": "Sub-tokens of document context each side (neighbouring "
                                                          "sentences of the same document; never labelled or predicted)."})
    document_context: bool = field(default=False, metadata={"help": "Fill each window with document context: "
                                                                    "--context_size up to --max_seq_length."})
    decoding: str = field(default="viterbi", metadata={"help": "viterbi (valid sequences) or argmax.",
                                                       "choices": ["viterbi", "argmax"]})
    strict_labels: bool = field(default=False, metadata={"help": "Refuse invalid IOB sequences instead of repairing them."})

    def resolved_context_size(self) -> int:
        """``--context_size``, or with ``--document_context`` the whole window: the aligner gives each side
        at most half the room a sentence leaves, so this fills the window."""
        if self.context_size < 0:
            raise ConfigError(f"--context_size {self.context_size} must be 0 or more")
        return max(self.context_size, self.max_seq_length) if self.document_context else self.context_size

    def to_configs(self, eval_batch_size: int) -> tuple[DataConfig, AlignConfig, EvalConfig]:
        def path(value: str | None) -> Path | None:
            return Path(value) if value else None

        if not self.dataset_name and not (self.train_file or self.validation_file or self.test_file):
            raise ConfigError("no data: pass --train_file/--validation_file/--test_file or --dataset_name")
        data = DataConfig(
            dataset_name=self.dataset_name, dataset_config_name=self.dataset_config_name,
            train_file=path(self.train_file), validation_file=path(self.validation_file), test_file=path(self.test_file),
            format=self.data_format, task_name=self.task_name, text_column_name=self.text_column_name,  # type: ignore[arg-type]
            label_column_name=self.label_column_name, label_column=self.label_column,
            label_names_file=path(self.label_names_file), conllu_tag=self.conllu_tag,  # type: ignore[arg-type]
            max_train_samples=self.max_train_samples, max_eval_samples=self.max_eval_samples,
            max_predict_samples=self.max_predict_samples, overwrite_cache=self.overwrite_cache,
        )
        align = AlignConfig(max_length=self.max_seq_length, stride=self.stride, label_all_tokens=self.label_all_tokens,
                            pad_to_max_length=self.pad_to_max_length, context_size=self.resolved_context_size())
        evaluation = EvalConfig(batch_size=eval_batch_size, decoding=self.decoding,  # type: ignore[arg-type]
                                return_entity_level_metrics=self.return_entity_level_metrics)
        return data, align, evaluation


@dataclass
class TagtuneTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with the upstream flags transformers 5 dropped and a more accurate default.

    Token-budget batches are the default: random batches of CoNLL-2003 are about 60% padding, and
    length-sorted sentence-count batches give the tokens of short sentences too much weight (they
    cost 0.8 F1 on CoNLL-2003 and 3 points on small, noisy data). Any explicit batching flag
    (``--group_by_length``, ``--train_sampling_strategy``, ``--max_tokens_per_batch``) replaces it.
    """

    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace the contents of --output_dir."})
    train_sampling_strategy: str | None = field(default=None, metadata={
        "help": "Sentence-count batches in this order: random (upstream), sequential, group_by_length or "
                "batch_rebalance. Default: token-budget batches (see --max_tokens_per_batch).",
        "choices": ["random", "sequential", "group_by_length", "batch_rebalance"]})
    group_by_length: bool | None = field(default=None, metadata={
        "help": "Upstream flag: True = length-grouped sentence-count batches, False = upstream's random batches."})
    max_train_seconds: float | None = field(default=None, metadata={
        "help": "Train for this wall time: the learning rate decays linearly with time to 0 and training stops "
                "then (or at the end of --num_train_epochs / --max_steps if sooner)."})
    max_tokens_per_batch: int | None = field(default=None, metadata={
        "help": "Batches of at most this many padded sub-tokens instead of a fixed sentence count. Default: "
                f"{SUBTOKENS_PER_SENTENCE} x --per_device_train_batch_size unless --group_by_length or "
                "--train_sampling_strategy is given; 0 = sentence-count batches."})

    def __post_init__(self) -> None:
        # tagtune's streaming evaluation reports no eval_loss, the Trainer's choice for the best model when
        # none is named: entity F1 is what this evaluation is for (--metric_for_best_model overrides it).
        if self.load_best_model_at_end and self.metric_for_best_model is None:
            self.metric_for_best_model = "f1"
        self.max_tokens_per_batch, strategy = resolve_batching(
            self.per_device_train_batch_size, self.max_tokens_per_batch, self.group_by_length,
            self.train_sampling_strategy)
        self.train_sampling_strategy = strategy
        super().__post_init__()

    def __getstate__(self) -> dict:
        """The pickled state, without secrets (``hub_token``: every name ending in ``_token``).

        The Trainer pickles its arguments into every ``checkpoint-N/training_args.bin`` (and into the
        output directory when it pushes); a token there would be published with the checkpoint. Copies
        made through pickling (``copy.deepcopy``) carry no token either.
        """
        return {name: None if name.endswith("_token") else value for name, value in self.__dict__.items()}


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, TagtuneTrainingArguments)


def parse_upstream_args(argv: list[str] | None = None):
    """Parse upstream flags (or a single ``.json`` file of them, as upstream allows).

    Returns:
        ``(ModelArguments, DataTrainingArguments, TagtuneTrainingArguments)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _OneLineParser(ARGUMENT_CLASSES)
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            parsed = parser.parse_json_file(json_file=str(Path(argv[0]).resolve()))
        else:
            parsed = parser.parse_args_into_dataclasses(args=argv)[:len(ARGUMENT_CLASSES)]  # less --verbose
    except ConfigError:
        raise
    except ValueError as error:  # unknown flags, invalid JSON, TrainingArguments' own consistency checks
        text = " ".join(str(error).split()) or type(error).__name__
        if text.startswith("Some specified arguments are not used"):
            text = f"unknown flags {text.split(': ', 1)[-1]}"
        source = f"{argv[0]}: " if len(argv) == 1 and argv[0].endswith(".json") else ""
        raise ConfigError(f"{source}{text}; see --help for the flags") from None
    check_flag_values(*parsed)
    return parsed


class _OneLineParser(HfArgumentParser):
    """argparse prints the whole usage block and exits; tagtune's promise is one line, exit 2."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # HfArgumentParser lets a bare ``--flag`` mean True only for booleans with a default; an optional
        # boolean (``--group_by_length``: None = not chosen) needs the same, as upstream users type it bare.
        from transformers.hf_argparser import string_to_bool

        for action in self._actions:
            if action.type is string_to_bool and action.nargs is None:
                action.nargs, action.const = "?", True
            if action.dest in ("task_name", "decoding", "data_format", "conllu_tag"):
                action.type = str.lower  # --task_name NER is upstream's ner (its choices are lower case)
        # --verbose (tracebacks instead of one line) is read by tagtune.cli.run_guarded; accepted here
        # so that it is not an unknown flag.
        self.add_argument("--verbose", action="store_true", help="Show the traceback of an error.")

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}; see --help for the flags")


def check_flag_values(model_args: ModelArguments, data_args: DataTrainingArguments, training_args) -> None:
    """Refuse flag values that would crash later (a batch of 0 divides by zero) or make no sense.

    Raises:
        ConfigError: Names the flag, the value and what is allowed.
    """
    def at_least(flag: str, value: float | None, low: float) -> None:
        if value is not None and not value >= low:  # ``not >=`` also refuses NaN
            raise ConfigError(f"--{flag} must be >= {low:g}, got {value!r}")

    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        at_least(name, getattr(training_args, name), 1)
    for name in ("num_train_epochs", "learning_rate", "weight_decay", "warmup_steps"):
        at_least(name, getattr(training_args, name, None), 0)
    at_least("max_seq_length", data_args.max_seq_length, 1)
    at_least("context_size", data_args.context_size, 0)
    at_least("stride", data_args.stride, 0)
    if data_args.stride is not None and data_args.stride >= data_args.max_seq_length:
        raise ConfigError(f"--stride {data_args.stride} must be smaller than --max_seq_length "
                          f"{data_args.max_seq_length} (it is the overlap between windows)")
    for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        at_least(name, getattr(data_args, name), 0)
    if not model_args.model_name_or_path.strip():
        raise ConfigError("--model_name_or_path is empty; pass a model directory")
