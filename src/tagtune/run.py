"""One run, two engines: :func:`prepare`, :func:`evaluate` and :func:`finish` around any optimisation loop.

Both engines (the Trainer in :mod:`tagtune.train`, the bare loop in ``run_ner_no_trainer.py``) do
only their loop; everything else is here, once:

- :func:`prepare`: output directory check, read and label the data, check that what must be tagged is,
  tokenizer, model (CRF included), aligner, decoder, the cached encoding of the training split and the
  start-of-run summary;
- :func:`evaluate`: tagtune's one evaluator (:func:`tagtune.evaluate.evaluate_examples`: chunked by
  document, bounded memory, sharded over processes when given an accelerator) and its metrics dict;
- :func:`finish`: the model published weights last, results JSON, ``predictions.txt``, report, run
  config and model card, each file atomic, ``all_results.json`` last (the run is complete).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tagtune.align import Aligner, Encoding, load_tokenizer, warn_long_words
from tagtune.cache import encode_cached
from tagtune.config import DataConfig, RunConfig
from tagtune.corpus import Corpus, Example
from tagtune.decode import Decoder
from tagtune.errors import ConfigError, OutputDirError
from tagtune.evaluate import EvalResult, evaluate_examples, write_predictions
from tagtune.fileio import atomic_write_json, atomic_write_text, publish_files
from tagtune.metrics import flatten_metrics
from tagtune.outputs import save_run_config, saved_fields, write_model_card
from tagtune.report import write_run_report
from tagtune.spans import SpanExample, span_metrics, span_prediction_lines

logger = logging.getLogger(__name__)

# Weights are written last: a directory holding none of these is not (yet) a model.
WEIGHT_FILES = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")
SPLIT_FLAGS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


@dataclass
class PreparedData:
    """A corpus with checked labels, ready for alignment."""

    corpus: Corpus
    scheme: str
    labels: list[str]
    warnings: list[str] = field(default_factory=list)


def prepare_data(data_cfg: DataConfig, strict: bool = False) -> PreparedData:
    """Read every split and settle the label list and tagging scheme (never loses a label name)."""
    from tagtune.labels import prepare_labels
    from tagtune.readers import read_corpus

    corpus = read_corpus(data_cfg)
    corpus, scheme, labels = prepare_labels(corpus, repair=not strict, strict=strict)
    for warning in corpus.warnings:
        logger.warning(warning)
    return PreparedData(corpus, scheme, labels, list(corpus.warnings))


def check_output_dir(output_dir: Path, overwrite: bool, resuming: bool) -> None:
    """Refuse to write into a non-empty output directory unless asked to (or resuming there)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"--output_dir '{output_dir}' exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite and not resuming:
        raise OutputDirError(
            f"--output_dir '{output_dir}' already exists and is not empty; pass --overwrite_output_dir to "
            "replace its contents or --resume_from_checkpoint to continue a run there"
        )


@dataclass
class Run:
    """What :func:`prepare` made: the data, the model and the means to encode, decode and score."""

    config: RunConfig
    data: PreparedData
    tokenizer: Any
    model: torch.nn.Module
    labels: list[str]
    aligner: Aligner
    decoder: Decoder
    train: Encoding | None = None

    @property
    def splits(self) -> dict[str, list[Example]]:
        return self.data.corpus.splits


@dataclass(frozen=True)
class Need:
    """A split the run uses: ``missing`` is the error when it is absent (``None``: it may be), ``tagged_for``
    what its tags are needed for (a test split without any tags is only tagged, never refused)."""

    missing: str | None
    tagged_for: str


def prepare(config: RunConfig, needs: Mapping[str, Need], *, output_dir: Path, overwrite: bool, resuming: bool,
            main_process_first: Callable[[], AbstractContextManager] = nullcontext, is_main: bool = True,
            model_type: str | None = None) -> Run:
    """Check the output directory, read and label the data, load tokenizer and model, encode training data.

    Args:
        needs: The splits this run uses and why (:class:`Need`); checked before any model is loaded.
        main_process_first: Accelerate's context: the main process reads and caches first, the others
            then read the cache.
        model_type: Train a new model of this type from scratch (no ``model_name_or_path``).
    """
    check_output_dir(output_dir, overwrite, resuming)
    if config.model.model_name_or_path:
        from tagtune.modeling import check_weights

        check_weights(config.model.model_name_or_path, config.model.allow_pickle)  # before minutes of reading
    with main_process_first():
        data = prepare_data(config.data, strict=config.strict_labels)
    _check_needs(data.corpus.splits, needs, config.data)
    model_cfg = config.model
    tokenizer = load_tokenizer(model_cfg.tokenizer_name or model_cfg.model_name_or_path,
                               trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.model_revision,
                               cache_dir=model_cfg.cache_dir, token=model_cfg.token)
    model, labels = load_model(config, data.labels, data.scheme, model_type)
    aligner = Aligner(tokenizer, config.align, {label: i for i, label in enumerate(labels)})
    run = Run(config, data, tokenizer, model, labels, aligner, Decoder(labels, data.scheme, config.eval.decoding))
    if "train" in needs:
        with main_process_first():  # the main process tokenizes and caches, the others read the cache
            run.train = encode_cached(aligner, run.splits["train"], overwrite=config.data.overwrite_cache, name="train",
                                      workers=config.data.preprocessing_num_workers)
        if is_main:
            warn_long_words("train", run.train.long_words, run.train.first_long_word, aligner.word_cap)
    return run


def _check_needs(splits: dict[str, list[Example]], needs: Mapping[str, Need], data_cfg: DataConfig) -> None:
    """Refuse a missing split, or untagged data where tags are needed, before any model is loaded."""
    from tagtune.readers import require_tags

    for split, need in needs.items():
        examples = splits.get(split)
        if not examples:
            if need.missing:
                raise ConfigError(need.missing)
            continue
        if split != "test" or any(e.tags is not None for e in examples):
            require_tags(examples, split, need.tagged_for, data_cfg)


def load_model(config: RunConfig, data_labels: list[str], scheme: str, model_type: str | None = None):
    """The model to train and its labels; with ``--crf`` wrapped in a CRF, whose transitions continue
    those of the starting model's ``crf.safetensors`` when it has one for the same labels."""
    from tagtune.modeling import load_token_classifier, resolve_labels

    if config.model.model_name_or_path:
        labels, reinit = resolve_labels(config.model, data_labels)
        model = load_token_classifier(config.model, labels, reinit_head=reinit)
        init_from = None if reinit else config.model.model_name_or_path
    else:
        from transformers import AutoConfig, AutoModelForTokenClassification

        labels, init_from = list(data_labels), None
        id2label = dict(enumerate(labels))
        sizes = {"num_labels": len(labels), "id2label": id2label, "label2id": {label: i for i, label in id2label.items()}}
        source = config.model.config_name or model_type
        logger.info("training a new model from scratch (%s)", source)
        try:  # --config_name (upstream: a config to train from scratch with), else --model_type's defaults
            model_config = (AutoConfig.from_pretrained(config.model.config_name, token=config.model.token,
                                                       trust_remote_code=config.model.trust_remote_code, **sizes)
                            if config.model.config_name else AutoConfig.for_model(model_type, **sizes))
        except (OSError, ValueError) as error:
            flag = "--config_name" if config.model.config_name else "--model_type"
            raise ConfigError(f"{flag} '{source}': {' '.join(str(error).split())[:200]}") from None
        model = AutoModelForTokenClassification.from_config(model_config,
                                                            trust_remote_code=config.model.trust_remote_code)
    if config.model.crf:
        from tagtune.crf import wrap_with_crf

        model = wrap_with_crf(model, labels, scheme, init_from=init_from)
    return model, labels


def evaluate(run: Run, model: torch.nn.Module, split: str, prefix: str, *, accelerator=None,
             autocast_dtype: torch.dtype | None = None, description: str = "evaluating") -> tuple[EvalResult, dict]:
    """Tag and score ``split`` with ``model`` (a CRF model with its own transitions): the result and its
    ``{prefix}_*`` metrics. With an ``accelerator``, call on every process: the work is sharded."""
    from tagtune.crf import decoder_for_model
    from tagtune.inference import model_forward

    examples = run.splits[split]
    bare = accelerator.unwrap_model(model) if accelerator is not None else model
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        result = evaluate_examples(
            model_forward(bare), run.aligner, examples, decoder_for_model(bare, run.decoder),
            batch_size=run.config.eval.batch_size, device=device, description=description,
            autocast_dtype=autocast_dtype if torch.device(device).type == "cpu" else None, accelerator=accelerator)
    finally:
        model.train(was_training)
    if accelerator is None or accelerator.is_main_process:
        warn_long_words(split, result.long_words, result.first_long_word, run.aligner.word_cap)
    metrics = flatten_metrics(result.metrics, run.config.eval.return_entity_level_metrics, prefix=f"{prefix}_") \
        if result.metrics else {}
    if result.loss is not None:  # --metric_for_best_model loss (the Trainer's default) works too
        metrics[f"{prefix}_loss"] = round(result.loss, 6)
    metrics.update(span_metrics(examples, result.predictions, f"{prefix}_"))  # character spans, for span data
    metrics.update({f"{prefix}_samples": len(examples), f"{prefix}_words": result.num_words,
                    f"{prefix}_windowed_sentences": result.windowed_examples, f"{prefix}_long_words": result.long_words})
    return result, metrics


def log_summary(run: Run, *, processes: int, per_step: int, max_tokens_per_batch: int, batch_size: int,
                sampling: str, steps: int, where: str = "") -> None:
    """The start-of-run line of both engines: sentences per split, labels, windows, processes, effective batch
    (``per_step`` batches of all processes make one optimizer step), optimizer steps."""
    batch = (f"{max_tokens_per_batch * per_step} padded sub-tokens" if max_tokens_per_batch
             else f"{batch_size * per_step} sentences ({sampling})")
    logger.info("sentences: %s | labels (%s, %d): %s | train windows %d (%d sentences needed several windows) | "
                "%d process(es)%s | effective batch %s | optimizer steps %d",
                ", ".join(f"{name} {len(examples)}" for name, examples in run.splits.items()), run.data.scheme,
                len(run.labels), " ".join(run.labels), len(run.train), run.train.windowed_examples, processes, where,
                batch, steps)


def calibrate(run: Run, model: torch.nn.Module, *, accelerator=None):
    """``--calibrate``: a temperature for entity scores fitted on the validation split (main process), and its
    summary for the report (ECE before and after); ``(None, None)`` when not asked or not possible."""
    from tagtune.calibration import calibrate_trained_model
    from tagtune.crf import decoder_for_model

    if not run.config.eval.calibrate or not run.splits.get("validation"):
        return None, None
    if accelerator is not None and not accelerator.is_main_process:
        return None, None
    bare = accelerator.unwrap_model(model) if accelerator is not None else model
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    return calibrate_trained_model(bare, run.aligner, run.splits["validation"], decoder_for_model(bare, run.decoder),
                                   run.data.scheme, test=run.splits.get("test"),
                                   per_label=run.config.eval.calibrate_per_label,
                                   batch_size=run.config.eval.batch_size, device=device)


def public_config(config: RunConfig, training: Mapping[str, Any]) -> dict[str, dict]:
    """The run's settings for the report and the trackers: the allow-listed fields of the sections a model
    directory saves (never a token), and the engine's training settings (token-free)."""
    public = {section: saved_fields(getattr(config, section)) for section in ("data", "model", "align", "eval")}
    public["training"] = {k: v for k, v in training.items() if not k.endswith("_token") and k != "token"}
    return public


def finish(run: Run, output_dir: Path, results: dict[str, float], *, evaluation: EvalResult | None,
           test_result: EvalResult | None, history: list[dict] | None, training: Mapping[str, Any] | None,
           card_settings: Any = None, save_model: Callable[[Path], None] | None = None,
           is_main: bool = True, push: Push | None = None, calibration=None,
           calibration_summary: dict | None = None) -> None:
    """Write the run's outputs into ``output_dir``, each file atomic, ``all_results.json`` last.

    Args:
        results: ``train_*``, ``eval_*`` and ``predict_*`` metrics (split into their JSON files).
        evaluation / test_result: What :func:`evaluate` returned for the validation / test split.
        history: Logged training steps (learning curves of the report).
        training: The engine's training settings, for the report (``None``: nothing was trained).
        card_settings: What the model card reads its training settings from (``TrainingArguments`` or the
            loop's config with ``bf16``/``fp16``); the card is written when a model was trained.
        save_model: Writes the model into a staging directory (called on every process: sharded models
            gather there); it is then published into ``output_dir`` weights last, so a run killed meanwhile
            leaves either the new model or a directory without weights, never new settings with old weights.
        push: Publish the finished directory to the hub (``--push_to_hub``), once, at the very end.
        calibration / calibration_summary: What :func:`calibrate` returned: ``calibration.json`` is staged with
            the model, the summary goes to the report.
    """
    if save_model is not None:
        staging = output_dir / ".partial-model"
        if is_main:
            shutil.rmtree(staging, ignore_errors=True)
        save_model(staging)
        if is_main:  # tokenizer and tagtune_config.json arrive with the model, the weights last
            run.tokenizer.save_pretrained(staging)
            save_run_config(staging, run.config.data, run.config.model, run.config.align, run.config.eval,
                            run.labels, run.data.scheme)
            if calibration is not None:
                from tagtune.calibration import save_calibration

                save_calibration(staging, calibration)
            publish_files(staging, output_dir, last=WEIGHT_FILES)
    if not is_main:
        return
    for prefix, name in (("train", "train_results.json"), ("eval", "eval_results.json"),
                         ("predict", "predict_results.json")):
        part = {k: v for k, v in results.items() if k.startswith(f"{prefix}_") or (prefix == "train" and k == "epoch")}
        if part:
            atomic_write_json(output_dir / name, part)
    if test_result is not None:
        test = run.splits["test"]
        write_predictions(output_dir / "predictions.txt", test, test_result.predictions)
        if test and all(isinstance(e, SpanExample) for e in test):  # span data: predictions as spans too
            atomic_write_text(output_dir / "predictions.jsonl", "".join(span_prediction_lines(test, test_result.predictions)))
    if not results:
        return
    # report.html + plots/ of the test split when it is scored, else of the validation split (the card cites it)
    split, result = ("test", test_result) if test_result is not None and test_result.metrics \
        else ("validation", evaluation)
    write_run_report(output_dir, split, run.splits.get(split, []), result, history or None,
                     public_config(run.config, training or {}), scores=calibration_summary)
    if save_model is not None:
        write_model_card(output_dir, run.config.model, run.config.data, run.labels, results, card_settings)
    atomic_write_json(output_dir / "all_results.json", results)  # last: the run is complete
    logger.info("model and results saved in %s", output_dir)
    if push is not None:
        push_to_hub(output_dir, push)


@dataclass(frozen=True)
class Push:
    """Where ``--push_to_hub`` publishes: ``repo_id`` (``--hub_model_id``, else the output directory's name)."""

    repo_id: str
    token: str | None = field(default=None, repr=False)
    private: bool | None = None


# Never published: checkpoints (they hold optimizer states), staging folders, tracker logs.
PUSH_IGNORE = ["checkpoint-*", "checkpoint-*/**", "step_*/**", "epoch_*/**", ".partial-*/**", ".tmp-*/**", "runs/**"]


def push_to_hub(output_dir: Path, push: Push) -> str:
    """Upload the finished model directory (weights, tokenizer, card, results, report) in one commit.

    Upstream's Trainer pushes from inside ``save_model``, before the results and the card exist; tagtune
    pushes once, after ``all_results.json``. The token goes to the hub client only, never into a file.

    Raises:
        OutputDirError: The upload failed (the model stays saved in ``output_dir``).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=push.token)
    try:
        api.create_repo(push.repo_id, private=push.private, exist_ok=True)
        commit = api.upload_folder(repo_id=push.repo_id, folder_path=str(output_dir), ignore_patterns=PUSH_IGNORE,
                                   commit_message="tagtune: fine-tuned model, card and results")
    except Exception as error:  # noqa: BLE001 - network, authentication, hub errors: one line
        text = " ".join(str(error).split())[:200] or type(error).__name__
        raise OutputDirError(f"the model is saved in '{output_dir}', but pushing it to the hub as "
                             f"'{push.repo_id}' failed: {text}") from None
    logger.info("pushed %s to the hub as %s", output_dir, push.repo_id)
    return str(getattr(commit, "commit_url", commit))
