"""Every tagtune flag, declared once: both example scripts' parsers are made from this table.

A :class:`Flag` is one setting: its name, the other spellings it is accepted under (the other upstream
script's, ``TrainingArguments``'), type, default, help and the engines that take it. From the table:

- ``run_ner.py`` (:func:`parse_trainer_args`): ``HfArgumentParser`` over :data:`ARGUMENT_CLASSES`,
  dataclasses made from the table plus transformers' own ``TrainingArguments`` (the Trainer's flags
  are transformers' table, not repeated here);
- ``run_ner_no_trainer.py`` (:func:`parse_loop_args`): an ``argparse`` parser of the same table;
- ``tagtune train``: one of the two, with its friendly options as defaults (:func:`parse_trainer_args`,
  :func:`parse_loop_args` take ``defaults``), never rewritten argv.

Both parsers end in :func:`run_config`, the one place where values are checked and become the typed
:class:`~tagtune.config.RunConfig`. Every flag has one name; the other script's spelling is an alias
(``--max_length`` and ``--max_seq_length``, ``--max_steps`` and ``--max_train_steps``, ...), so a
flag means the same thing whichever script or verb reads it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from tagtune.batching import SAMPLING_STRATEGIES, SUBTOKENS_PER_SENTENCE, resolve_batching
from tagtune.config import AlignConfig, DataConfig, EvalConfig, LoopConfig, ModelConfig, RunConfig
from tagtune.errors import ConfigError

TRAINER, LOOP = "trainer", "accelerate"
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
DEBUG_SAMPLES = 100  # upstream run_ner_no_trainer.py --debug keeps the first 100 sentences of each split


@dataclass(frozen=True)
class Flag:
    """One flag.

    Attributes:
        name: The flag's name (``--name``) and its field in the parsed values.
        type: ``str``, ``int``, ``float`` or ``bool`` (a switch: ``--x``, ``--x true``, ``--x false``).
        default: Its value when not given; ``None`` for an optional boolean means "not chosen".
        group: ``model`` / ``data`` (run_ner.py's ModelArguments / DataTrainingArguments), ``training``
            (run_ner.py's TrainingArguments, tagtune's additions) or ``loop`` (the bare loop's own).
        engines: The scripts that take it.
        loop_name: Its spelling in upstream's run_ner_no_trainer.py when that differs (also accepted by
            run_ner.py where TrainingArguments has no flag of that name).
        aliases: Other spellings both parsers accept.
        lower: Read case-insensitively (``--task_name NER``).
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    group: str = "data"
    choices: tuple[str, ...] | None = None
    engines: tuple[str, ...] = (TRAINER, LOOP)
    loop_name: str | None = None
    aliases: tuple[str, ...] = ()
    lower: bool = False

    def spellings(self, engine: str) -> list[str]:
        """``--`` spellings for ``engine``'s parser, its upstream one first."""
        names = [self.loop_name, self.name] if engine == LOOP and self.loop_name else [self.name, self.loop_name]
        return [f"--{n}" for n in dict.fromkeys(n for n in (*names, *self.aliases) if n)]


_M, _D, _T, _L = "model", "data", "training", "loop"
FLAGS: tuple[Flag, ...] = (
    # Model (upstream's, then tagtune's safety switches and the CRF).
    Flag("model_name_or_path", default=None, group=_M, help="Local model directory (or hub name when online)."),
    Flag("config_name", group=_M, help="Config name or path if not the model's."),
    Flag("tokenizer_name", group=_M, help="Tokenizer name or path if not the model's."),
    Flag("cache_dir", group=_M, help="Cache directory for hub models and data sets."),
    Flag("model_revision", default="main", group=_M, help="Model version (branch, tag or commit)."),
    Flag("token", group=_M, loop_name="hub_token", help="Hub token for private models and data sets; never saved."),
    Flag("trust_remote_code", bool, False, group=_M, help="Run code shipped with the model."),
    Flag("ignore_mismatched_sizes", bool, False, group=_M, help="Replace a head with other labels."),
    Flag("allow_pickle", bool, False, group=_M, help="Accept pickled .bin/.pt weights (unsafe)."),
    Flag("crf", bool, False, group=_M, help="Linear-chain CRF over the words on top of the encoder, trained with "
                                           "the sequence likelihood, decoded with Viterbi."),
    Flag("model_type", group=_M, engines=(LOOP,),
         help="Model type when training from scratch (needs --tokenizer_name)."),
    # Data, windows and decoding.
    Flag("task_name", default="ner", choices=("ner", "pos", "chunk"), lower=True, help="Which tags to read."),
    Flag("dataset_name", help="Hub data set name (datasets.load_dataset)."),
    Flag("dataset_config_name", help="Hub data set configuration."),
    Flag("train_file", help="CoNLL, CoNLL-U, JSON(L) or CSV training file."),
    Flag("validation_file", help="Validation file (same formats)."),
    Flag("test_file", help="Test file (same formats): predict_results.json and predictions.txt."),
    Flag("text_column_name", help="Column of the words (default tokens)."),
    Flag("label_column_name", help="Column of the tags (default {task}_tags)."),
    Flag("overwrite_cache", bool, False, help="Tokenize again instead of reusing the cached tokenization."),
    Flag("preprocessing_num_workers", int, help="Tokenize the training data in this many processes."),
    Flag("max_seq_length", int, 128, loop_name="max_length",
         help="Longest model input in sub-tokens; longer sentences are windowed, never truncated."),
    Flag("pad_to_max_length", bool, False, help="Pad every batch to --max_seq_length."),
    Flag("max_train_samples", int, help="Use only the first N training sentences."),
    Flag("max_eval_samples", int, help="Use only the first N validation sentences."),
    Flag("max_predict_samples", int, help="Use only the first N test sentences."),
    Flag("label_all_tokens", bool, False, help="Label every sub-token, not only the first."),
    Flag("return_entity_level_metrics", bool, False, help="Report metrics per entity type."),
    Flag("data_format", default="auto", choices=("auto", "conll", "conllu", "json", "jsonl", "csv", "spans", "labelstudio",
                                               "brat"), lower=True,
         help="Data file format (default: detected). spans, labelstudio, brat: text with character spans."),
    Flag("overlapping_spans", default="error", choices=("error", "longest"), lower=True,
         help="Span data: overlapping spans are an error, or keep the longest (one warning counts them)."),
    Flag("annotator", default="latest",
         help="Label Studio exports: whose annotation to read: latest, first, predictions, or an annotator id."),
    Flag("label_names_file", help="JSON naming integer tag ids."),
    Flag("label_column", int, help="Tag column index in CoNLL files."),
    Flag("conllu_tag", default="upos", choices=("upos", "xpos"), lower=True, help="Tag column of CoNLL-U files."),
    Flag("stride", int, help="Sub-tokens shared by consecutive windows (default: a quarter of the window, at most 32)."),
    Flag("context_size", int, 0, help="Sub-tokens of document context each side (neighbouring sentences of the "
                                      "same document; never labelled or predicted)."),
    Flag("document_context", bool, False, help="Fill each window with document context: --context_size up to "
                                               "--max_seq_length."),
    Flag("decoding", default="viterbi", choices=("viterbi", "argmax"), lower=True,
         help="How word scores become tags: viterbi (valid sequences) or argmax."),
    Flag("strict_labels", bool, False, help="Refuse invalid IOB sequences instead of repairing them."),
    Flag("calibrate", bool, False, help="After training, fit a temperature for entity scores on the validation split; "
                                        "saved as calibration.json (scores change, tags never)."),
    Flag("calibrate_per_label", bool, False, help="With --calibrate: one temperature per label."),
    # Training flags of both engines that TrainingArguments lacks (run_ner.py: on its TrainingArguments).
    Flag("overwrite_output_dir", bool, False, group=_T, help="Replace the contents of --output_dir."),
    Flag("max_tokens_per_batch", int, group=_T,
         help=f"Training batches of at most this many padded sub-tokens instead of a sentence count. Default: "
              f"{SUBTOKENS_PER_SENTENCE} x --per_device_train_batch_size unless --group_by_length or "
              "--train_sampling_strategy is given; 0 = sentence-count batches in upstream's random order."),
    Flag("group_by_length", bool, None, group=_T,
         help="True: length-grouped sentence-count batches; False: upstream's random batches."),
    Flag("train_sampling_strategy", choices=SAMPLING_STRATEGIES, group=_T,
         help="Sentence-count batches in this order (the bare loop: random or group_by_length). Default: "
              "token-budget batches (see --max_tokens_per_batch)."),
    Flag("max_train_seconds", float, group=_T,
         help="Train for this wall time: the learning rate decays linearly with time to 0 and training stops "
              "then (or at the end of the epochs / steps if sooner)."),
    # The bare loop's own (run_ner.py has them from TrainingArguments, under the alias names).
    Flag("output_dir", group=_L, engines=(LOOP,), help="Where the model, results and checkpoints go (required)."),
    Flag("per_device_train_batch_size", int, 8, group=_L, engines=(LOOP,), help="Training batch size per process."),
    Flag("per_device_eval_batch_size", int, 8, group=_L, engines=(LOOP,), help="Evaluation batch size per process."),
    Flag("learning_rate", float, 5e-5, group=_L, engines=(LOOP,), help="Peak learning rate."),
    Flag("weight_decay", float, 0.0, group=_L, engines=(LOOP,),
         help="AdamW weight decay (not on biases and LayerNorm)."),
    Flag("max_grad_norm", float, 1.0, group=_L, engines=(LOOP,),
         help="Clip the gradient norm to this before each step, as the Trainer does (0: no clipping, as upstream)."),
    Flag("num_train_epochs", float, 3, group=_L, engines=(LOOP,),
         help="Training epochs (a fraction trains part of the last)."),
    Flag("max_train_steps", int, group=_L, engines=(LOOP,), aliases=("max_steps",),
         help="Optimizer steps; overrides --num_train_epochs."),
    Flag("gradient_accumulation_steps", int, 1, group=_L, engines=(LOOP,), help="Batches per optimizer step."),
    Flag("lr_scheduler_type", default="linear", choices=SCHEDULERS, group=_L, engines=(LOOP,),
         help="Learning-rate schedule."),
    Flag("num_warmup_steps", int, 0, group=_L, engines=(LOOP,), aliases=("warmup_steps",),
         help="Warm-up optimizer steps."),
    Flag("seed", int, group=_L, engines=(LOOP,), help="Seed for weights, dropout and batch order (random when unset)."),
    Flag("debug", bool, False, group=_L, engines=(LOOP,),
         help=f"Use only the first {DEBUG_SAMPLES} sentences of each split."),
    Flag("push_to_hub", bool, False, group=_L, engines=(LOOP,),
         help="Publish the finished model directory (card, results, report; no checkpoints) to the hub, once, at the end."),
    Flag("hub_model_id", group=_L, engines=(LOOP,), help="Hub repository of --push_to_hub (default: the output directory's name)."),
    Flag("checkpointing_steps", group=_L, engines=(LOOP,), aliases=("save_steps",),
         help="Save a resumable checkpoint every N optimizer steps, or 'epoch' after each epoch."),
    Flag("resume_from_checkpoint", group=_L, engines=(LOOP,),
         help="'latest' (newest complete checkpoint in --output_dir) or a checkpoint directory."),
    Flag("with_tracking", bool, False, group=_L, engines=(LOOP,), help="Log to experiment trackers (see --report_to)."),
    Flag("report_to", default="all", group=_L, engines=(LOOP,), help="tensorboard, wandb, ... or all (installed ones)."),
    Flag("mixed_precision", choices=("no", "fp16", "bf16"), group=_L, engines=(LOOP,),
         help="Default: accelerate's config or launcher flag. bf16 works on CPU, fp16 needs a GPU."),
    Flag("bf16", bool, False, group=_L, engines=(LOOP,), help="As --mixed_precision bf16 (run_ner.py's spelling)."),
    Flag("fp16", bool, False, group=_L, engines=(LOOP,), help="As --mixed_precision fp16 (run_ner.py's spelling)."),
    Flag("cpu", bool, False, group=_L, engines=(LOOP,), aliases=("use_cpu",),
         help="Train on CPU even when a GPU is visible."),
    Flag("logging_steps", int, 10, group=_L, engines=(LOOP,), help="Optimizer steps between tracker logs."),
)
_BY_NAME = {flag.name: flag for flag in FLAGS}


def _boolean(value: str | bool) -> bool:
    """``true/false`` spellings as HfArgumentParser reads them, so both scripts take the same values."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1", "yes", "y", "t"):
        return True
    if value.lower() in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


# --------------------------------------------------------------------------------------------------
# run_ner_no_trainer.py: argparse over the table.


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block and exits; tagtune's promise is one line, exit 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise ConfigError(f"{message}; see --help for the flags")


def build_loop_parser() -> argparse.ArgumentParser:
    """``run_ner_no_trainer.py``'s parser: every flag of the table for the bare loop."""
    parser = _OneLineParser(
        description="Fine-tune a token classification model (NER, POS, chunking) with a plain Accelerate loop.")
    for flag in FLAGS:
        if LOOP not in flag.engines:
            continue
        kwargs: dict[str, Any] = {"dest": flag.name, "default": flag.default, "help": flag.help}
        if flag.type is bool:  # --x, --x true, --x false
            kwargs.update(type=_boolean, nargs="?", const=True)
        else:
            kwargs.update(type=str.lower if flag.lower else flag.type, choices=flag.choices)
        parser.add_argument(*flag.spellings(LOOP), **kwargs)
    parser.add_argument("--verbose", action="store_true", help="Show the traceback of an error.")
    return parser


def parse_loop_args(argv: list[str] | None = None, defaults: Mapping[str, Any] | None = None) -> RunConfig:
    """Parse ``run_ner_no_trainer.py`` flags into the run's typed configs (``.loop`` set).

    Args:
        defaults: Values used where a flag is not given (``tagtune train``'s friendly options).

    Raises:
        ConfigError: Contradictory or unsupported flags (say which and how to fix them).
    """
    parser = build_loop_parser()
    parser.set_defaults(**(defaults or {}))
    values = vars(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))
    return run_config(values, LOOP)


# --------------------------------------------------------------------------------------------------
# run_ner.py: HfArgumentParser over dataclasses made from the table, plus TrainingArguments.


def _dataclass_fields(group: str) -> list[tuple[str, Any, dataclasses.Field]]:
    out = []
    for flag in FLAGS:
        if flag.group != group or TRAINER not in flag.engines:
            continue
        metadata: dict[str, Any] = {"help": flag.help}
        if flag.choices:
            metadata["choices"] = list(flag.choices)
        if flag.loop_name and flag.name != "token":  # run_ner.py's TrainingArguments has its own --hub_token
            metadata["aliases"] = [f"--{flag.loop_name}"]
        kind = flag.type if flag.default is not None else flag.type | None
        out.append((flag.name, kind, dataclasses.field(default=flag.default, metadata=metadata)))
    return out


def _make_training_arguments():
    from transformers import TrainingArguments

    def __post_init__(self) -> None:
        import torch

        if not torch.cuda.is_available():
            # --bf16 on a CPU: transformers insists on --use_cpu; there is nothing else to use. And nothing to pin
            # memory to (torch warns on every loader).
            self.use_cpu = self.use_cpu or self.bf16
            self.dataloader_pin_memory = False
        # tagtune's streaming evaluation reports no eval_loss, the Trainer's choice for the best model when
        # none is named: entity F1 is what this evaluation is for (--metric_for_best_model overrides it).
        if self.load_best_model_at_end and self.metric_for_best_model is None:
            self.metric_for_best_model = "f1"
        self.max_tokens_per_batch, self.train_sampling_strategy = resolve_batching(
            self.per_device_train_batch_size, self.max_tokens_per_batch, self.group_by_length,
            self.train_sampling_strategy)
        TrainingArguments.__post_init__(self)

    def __getstate__(self) -> dict:
        """The pickled state, without secrets (``hub_token``: every name ending in ``_token``).

        The Trainer pickles its arguments into every ``checkpoint-N/training_args.bin``; a token there would
        be published with the checkpoint. Copies made through pickling (``copy.deepcopy``) carry none either.
        """
        return {name: None if name.endswith("_token") else value for name, value in self.__dict__.items()}

    return dataclasses.make_dataclass(
        "TagtuneTrainingArguments", _dataclass_fields(_T), bases=(TrainingArguments,),
        namespace={"__post_init__": __post_init__, "__getstate__": __getstate__, "__module__": __name__,
                   "__doc__": "``TrainingArguments`` plus the training flags of tagtune's table (token-budget "
                              "batches by default, --max_train_seconds, --overwrite_output_dir)."})


ModelArguments = dataclasses.make_dataclass("ModelArguments", _dataclass_fields(_M), namespace={"__module__": __name__})
DataTrainingArguments = dataclasses.make_dataclass("DataTrainingArguments", _dataclass_fields(_D),
                                                   namespace={"__module__": __name__})
TagtuneTrainingArguments = _make_training_arguments()
ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, TagtuneTrainingArguments)


def _trainer_parser():
    from transformers import HfArgumentParser
    from transformers.hf_argparser import string_to_bool

    class OneLine(HfArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise ConfigError(f"{message}; see --help for the flags")

    parser = OneLine(ARGUMENT_CLASSES)
    for action in parser._actions:
        # HfArgumentParser lets a bare ``--flag`` mean True only for booleans with a default; an optional
        # boolean (``--group_by_length``: None = not chosen) needs the same, as upstream users type it bare.
        if action.type is string_to_bool and action.nargs is None:
            action.nargs, action.const = "?", True
        if action.dest in _BY_NAME and _BY_NAME[action.dest].lower:
            action.type = str.lower
    # --verbose (tracebacks instead of one line) is read by tagtune.cli.run_guarded; accepted here.
    parser.add_argument("--verbose", action="store_true", help="Show the traceback of an error.")
    return parser


def parse_trainer_args(argv: list[str] | None = None, defaults: Mapping[str, Any] | None = None):
    """Parse ``run_ner.py`` flags (or a single ``.json`` file of them, as upstream allows).

    Args:
        defaults: Values used where a flag is not given (``tagtune train``'s friendly options).

    Returns:
        ``(RunConfig, TagtuneTrainingArguments)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _trainer_parser()
    parser.set_defaults(**(defaults or {}))
    source = f"{argv[0]}: " if len(argv) == 1 and argv[0].endswith(".json") else ""
    try:
        if source:
            parsed = parser.parse_json_file(json_file=str(Path(argv[0]).resolve()))
        else:
            parsed = parser.parse_args_into_dataclasses(args=argv)[:len(ARGUMENT_CLASSES)]  # less --verbose
    except ConfigError:
        raise
    except ValueError as error:  # unknown flags, invalid JSON, TrainingArguments' own consistency checks
        text = " ".join(str(error).split()) or type(error).__name__
        if text.startswith("Some specified arguments are not used"):
            text = f"unknown flags {text.split(': ', 1)[-1]}"
        raise ConfigError(f"{source}{text}; see --help for the flags") from None
    model_args, data_args, training_args = parsed
    if not model_args.token and training_args.hub_token:  # one token for the model, the data and the push
        model_args.token = training_args.hub_token
    values = {**dataclasses.asdict(model_args), **dataclasses.asdict(data_args),
              **{name: getattr(training_args, name) for name in
                 ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                  "num_train_epochs", "learning_rate", "weight_decay", "warmup_steps", "output_dir")}}
    return run_config(values, TRAINER), training_args


# --------------------------------------------------------------------------------------------------
# One check, one build.


def _spelled(name: str, engine: str) -> str:
    flag = _BY_NAME.get(name)
    return f"--{flag.spellings(engine)[0][2:]}" if flag else f"--{name}"


def check_values(values: Mapping[str, Any], engine: str) -> None:
    """Refuse flag values that would crash later (a batch of 0 divides by zero) or make no sense.

    Raises:
        ConfigError: Names the flag as the script spells it, the value and what is allowed.
    """
    def at_least(name: str, low: float) -> None:
        value = values.get(name)
        if value is not None and not value >= low:  # ``not >=`` also refuses NaN
            raise ConfigError(f"{_spelled(name, engine)} must be >= {low:g}, got {value!r}")

    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                 "max_seq_length", "max_train_steps", "preprocessing_num_workers"):
        at_least(name, 1)
    if (values.get("context_size") or 0) < 0:
        raise ConfigError(f"--context_size {values['context_size']} must be 0 or more")
    for name in ("num_train_epochs", "learning_rate", "weight_decay", "warmup_steps", "num_warmup_steps", "stride", "max_train_samples", "max_eval_samples", "max_predict_samples",
                 "max_grad_norm"):
        at_least(name, 0)
    if engine == LOOP:
        at_least("logging_steps", 1)
    stride, length = values.get("stride"), values["max_seq_length"]
    if stride is not None and stride >= length:
        raise ConfigError(f"--stride {stride} must be smaller than {_spelled('max_seq_length', engine)} {length} "
                          "(it is the overlap between windows)")
    if values.get("max_train_seconds") is not None and not values["max_train_seconds"] > 0:
        raise ConfigError(f"--max_train_seconds must be positive, got {values['max_train_seconds']}")
    if values.get("crf") and values.get("label_all_tokens"):
        raise ConfigError("--crf scores words (first sub-tokens) and cannot be combined with --label_all_tokens; "
                          "drop one of them")
    if not values.get("output_dir"):
        raise ConfigError("--output_dir is required: the model, results and checkpoints are written there")
    model = (values.get("model_name_or_path") or "").strip()
    if engine == TRAINER and not model:
        raise ConfigError("--model_name_or_path is empty; pass a model directory")
    scratch = values.get("model_type") or values.get("config_name")
    if engine == LOOP and not model and not (scratch and values.get("tokenizer_name")):
        raise ConfigError("pass --model_name_or_path, or --model_type (or --config_name) with --tokenizer_name to train "
                          "from scratch")


def run_config(values: Mapping[str, Any], engine: str) -> RunConfig:
    """The typed configs of a run from parsed flag values (one flat mapping, names as in :data:`FLAGS`)."""
    check_values(values, engine)
    if not values.get("dataset_name") and not (values.get("train_file") or values.get("validation_file")
                                               or values.get("test_file")):
        raise ConfigError("no data: pass --train_file/--validation_file/--test_file or --dataset_name")

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    debug = engine == LOOP and values.get("debug")

    def limit(name: str) -> int | None:
        value = values.get(name)
        return min(value, DEBUG_SAMPLES) if debug and value else (DEBUG_SAMPLES if debug else value)

    data = DataConfig(
        dataset_name=values.get("dataset_name"), dataset_config_name=values.get("dataset_config_name"),
        train_file=path(values.get("train_file")), validation_file=path(values.get("validation_file")),
        test_file=path(values.get("test_file")), format=values["data_format"], task_name=values["task_name"],
        text_column_name=values.get("text_column_name"), label_column_name=values.get("label_column_name"),
        label_column=values.get("label_column"), label_names_file=path(values.get("label_names_file")),
        conllu_tag=values["conllu_tag"], cache_dir=path(values.get("cache_dir")),
        overlapping_spans=values.get("overlapping_spans") or "error", annotator=values.get("annotator") or "latest",
        token=values.get("token"), preprocessing_num_workers=values.get("preprocessing_num_workers"),
        overwrite_cache=bool(values.get("overwrite_cache")), max_train_samples=limit("max_train_samples"),
        max_eval_samples=limit("max_eval_samples"), max_predict_samples=limit("max_predict_samples"),
    )
    model = ModelConfig(
        model_name_or_path=(values.get("model_name_or_path") or "").strip(), config_name=values.get("config_name"),
        tokenizer_name=values.get("tokenizer_name"), cache_dir=values.get("cache_dir"),
        model_revision=values.get("model_revision") or "main", token=values.get("token"),
        trust_remote_code=bool(values.get("trust_remote_code")),
        ignore_mismatched_sizes=bool(values.get("ignore_mismatched_sizes")),
        allow_pickle=bool(values.get("allow_pickle")), crf=bool(values.get("crf")),
    )
    # The aligner gives each side at most half the room a sentence leaves, so a context of the whole
    # window fills it. The resolved size is what tagtune_config.json records.
    length, context = values["max_seq_length"], values.get("context_size") or 0
    align = AlignConfig(max_length=length, stride=values.get("stride"),
                        label_all_tokens=bool(values.get("label_all_tokens")),
                        pad_to_max_length=bool(values.get("pad_to_max_length")),
                        context_size=max(context, length) if values.get("document_context") else context)
    evaluation = EvalConfig(batch_size=values.get("per_device_eval_batch_size") or 8, decoding=values["decoding"],
                            return_entity_level_metrics=bool(values.get("return_entity_level_metrics")),
                            calibrate=bool(values.get("calibrate")),
                            calibrate_per_label=bool(values.get("calibrate_per_label")))
    return RunConfig(data, model, align, evaluation, strict_labels=bool(values.get("strict_labels")),
                     loop=_loop_config(values) if engine == LOOP else None)


def _checkpointing(value: str | None) -> int | str | None:
    if value is None or value == "":
        return None
    if value == "epoch":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise ConfigError(f"--checkpointing_steps '{value}' must be a positive number of steps or 'epoch'")


def _loop_config(values: Mapping[str, Any]) -> LoopConfig:
    if not values["dataset_name"] and not values["train_file"]:
        raise ConfigError("no training data: pass --train_file or --dataset_name")
    if values["max_train_steps"] is None and not values["num_train_epochs"] > 0:
        raise ConfigError(f"--num_train_epochs must be positive, got {values['num_train_epochs']}")
    max_tokens, sampling = resolve_batching(values["per_device_train_batch_size"], values["max_tokens_per_batch"],
                                            values["group_by_length"], values["train_sampling_strategy"])
    if sampling not in ("random", "group_by_length"):
        raise ConfigError(f"the accelerate loop batches sentences 'random' or 'group_by_length', not '{sampling}'")
    precision = values["mixed_precision"]
    for switch in ("bf16", "fp16"):
        if values[switch]:
            if precision not in (None, switch):
                raise ConfigError(f"--{switch} contradicts --mixed_precision {precision}; pass one of them")
            precision = switch
    fields = {f.name for f in dataclasses.fields(LoopConfig)}
    taken = {name: value for name, value in values.items() if name in fields}
    return LoopConfig(**{**taken, "output_dir": Path(values["output_dir"]), "max_tokens_per_batch": max_tokens,
                         "train_sampling_strategy": sampling, "mixed_precision": precision,
                         "checkpointing_steps": _checkpointing(values["checkpointing_steps"]),
                         "resume_from_checkpoint": values["resume_from_checkpoint"] or None})
