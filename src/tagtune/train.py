"""The Trainer engine: read, label, align, fine-tune with ``transformers.Trainer``, evaluate, predict, save.

This is what ``examples/token-classification/run_ner.py`` and ``tagtune train`` run. Every
``TrainingArguments`` flag passes through; tagtune changes only defaults that measured better
(token-budget batches, :mod:`tagtune.batching`) and replaces the Trainer's evaluation, which keeps every
logit in memory and scores sub-tokens, by a streaming word-level one.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tagtune.align import Aligner, load_tokenizer, warn_long_words
from tagtune.cache import encode_cached
from tagtune.config import AlignConfig, DataConfig, EvalConfig, ModelConfig
from tagtune.corpus import Corpus, Example
from tagtune.decode import Decoder
from tagtune.errors import ConfigError, OutputDirError
from tagtune.evaluate import EvalResult, evaluate_examples, write_predictions
from tagtune.fileio import atomic_write_json, atomic_write_text, publish_dir, publish_files
from tagtune.inference import model_forward
from tagtune.metrics import flatten_metrics
from tagtune.modeling import check_weights, load_token_classifier, resolve_labels
from tagtune.outputs import save_run_config, saved_fields, write_model_card
from tagtune.progress import bars_enabled
from tagtune.report import write_run_report

logger = logging.getLogger(__name__)


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


_CHECKPOINT_NAME = re.compile(r"checkpoint-([0-9]+)")
# Weights are written last: a directory holding none of these is not (yet) a model.
WEIGHT_FILES = ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json")


def checkpoint_is_complete(path: Path) -> bool:
    """Whether ``path`` is a whole ``checkpoint-N``: weights plus a trainer state that parses."""
    if not (path.is_dir() and _CHECKPOINT_NAME.fullmatch(path.name)):
        return False
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_FILES):
        return False
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` directory, if any.

    Checkpoints are written into hidden ``.partial-checkpoint-N`` directories and renamed into place,
    so a run killed while saving leaves no ``checkpoint-N``; a half one from another tool is skipped.
    """
    if not output_dir.is_dir():
        return None
    complete = [p for p in output_dir.iterdir() if checkpoint_is_complete(p)]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


class TrainClock:
    """Wall time since training started, for ``--max_train_seconds``."""

    def __init__(self, budget: float, warmup_fraction: float = 0.0):
        self.budget = budget
        self.warmup_fraction = warmup_fraction
        self.start: float | None = None

    def elapsed(self) -> float:
        return 0.0 if self.start is None else time.perf_counter() - self.start

    def lr_factor(self, _step: int = 0) -> float:
        """Linear warm-up over ``warmup_fraction`` of the budget, then linear decay to 0 at its end."""
        done = min(self.elapsed() / self.budget, 1.0)
        if done < self.warmup_fraction:
            return done / self.warmup_fraction
        return (1.0 - done) / (1.0 - self.warmup_fraction)


def _make_time_budget_callback(clock: TrainClock):
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stops training once ``clock.budget`` seconds have passed."""

        def on_train_begin(self, args, state, control, **kwargs):
            clock.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if clock.elapsed() >= clock.budget:
                control.should_training_stop = True
            return control

    return TimeBudget()


def _make_trainer_class():
    from transformers import Trainer

    from tagtune.crf import CRF_LR_SCALE, TokenClassifierWithCRF

    class TagtuneTrainer(Trainer):
        """A Trainer whose evaluation is tagtune's streaming, word-level one, which saves and loads CRF
        models as tagtune model directories, and which can train for a wall-time budget."""

        def __init__(self, *args: Any, word_evaluator=None, clock: TrainClock | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.word_evaluator = word_evaluator
            self.clock = clock
            if clock is not None:
                self.add_callback(_make_time_budget_callback(clock))

        def _crf_model(self) -> TokenClassifierWithCRF | None:
            model = self.accelerator.unwrap_model(self.model)
            return model if isinstance(model, TokenClassifierWithCRF) else None

        def create_optimizer(self, model=None):
            optimizer = super().create_optimizer(model)
            crf_model = self._crf_model()
            if crf_model is not None and not any(g.get("tagtune_crf") for g in optimizer.param_groups):
                # The transitions start at zero: give them a learning rate that moves them in one epoch.
                own = {id(p) for p in crf_model.crf.parameters()}
                for group in optimizer.param_groups:
                    group["params"] = [p for p in group["params"] if id(p) not in own]
                optimizer.add_param_group({"params": list(crf_model.crf.parameters()), "weight_decay": 0.0,
                                           "lr": self.args.learning_rate * CRF_LR_SCALE, "tagtune_crf": True})
            return optimizer

        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.clock is None or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            from torch.optim.lr_scheduler import LambdaLR

            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, self.clock.lr_factor)
            self._created_lr_scheduler = True
            return self.lr_scheduler

        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            crf_model = self._crf_model()
            if crf_model is None:
                return super()._save(output_dir, state_dict)
            if not self.args.should_save:
                return None
            output_dir = output_dir if output_dir is not None else self.args.output_dir
            crf_model.save_pretrained(output_dir, state_dict=state_dict)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            return None

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            target = model if model is not None else self._crf_model()
            if isinstance(target, TokenClassifierWithCRF):
                target.load_weights(resume_from_checkpoint)
                return None
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

        def _load_best_model(self) -> None:
            crf_model = self._crf_model()
            if crf_model is None:
                return super()._load_best_model()
            crf_model.load_weights(self.state.best_model_checkpoint)
            return None

        def _save_checkpoint(self, model, trial) -> None:
            # transformers writes checkpoint-N in place: a run killed mid-save leaves a half checkpoint
            # that resuming trips on. Write it into a hidden sibling and rename it into place.
            run_dir = Path(self._get_output_dir(trial=trial))
            name = f"checkpoint-{self.state.global_step}"
            staging = run_dir / f".partial-{name}"
            if self.args.should_save:
                shutil.rmtree(staging, ignore_errors=True)
            self.accelerator.wait_for_everyone()
            staging.mkdir(parents=True, exist_ok=True)
            self._get_output_dir = lambda trial=None: str(staging)  # where super() puts checkpoint-N
            try:
                super()._save_checkpoint(model, trial)
            finally:
                del self._get_output_dir
            self.accelerator.wait_for_everyone()
            if self.args.should_save:
                best = self.state.best_model_checkpoint
                if best and Path(best).parent == staging:
                    self.state.best_model_checkpoint = str(run_dir / Path(best).name)
                    atomic_write_text(staging / name / "trainer_state.json", _state_json(self.state))
                publish_dir(staging / name, run_dir / name)
                shutil.rmtree(staging, ignore_errors=True)
                _rotate_checkpoints(self, run_dir)
            self.accelerator.wait_for_everyone()

        def get_train_dataloader(self):
            max_tokens = getattr(self.args, "max_tokens_per_batch", None)
            if not max_tokens:
                return super().get_train_dataloader()
            return self.accelerator.prepare(token_budget_dataloader(self, max_tokens))

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
            if self.word_evaluator is None:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            start = time.perf_counter()
            metrics = self.word_evaluator(self.model, metric_key_prefix)
            metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - start, 4)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return TagtuneTrainer


def token_budget_dataloader(trainer, max_tokens: int):
    """A training DataLoader of token-budget batches (``--max_tokens_per_batch``)."""
    from torch.utils.data import DataLoader

    from tagtune.batching import TokenBudgetBatchSampler

    dataset = trainer.train_dataset
    sampler = TokenBudgetBatchSampler(dataset["length"], max_tokens, seed=trainer.args.seed)
    features = dataset.remove_columns([c for c in dataset.column_names if c not in ("input_ids", "labels")])
    return DataLoader(features, batch_sampler=sampler, collate_fn=trainer.data_collator,
                      num_workers=trainer.args.dataloader_num_workers)


class CountingCollator:
    """Wraps a data collator to count real and padding tokens of the training batches."""

    def __init__(self, inner):
        self.inner = inner
        self.real_tokens = 0
        self.batch_tokens = 0

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch["attention_mask"]
        self.real_tokens += int(mask.sum())
        self.batch_tokens += int(mask.numel())
        return batch

    def figures(self, seconds: float) -> dict[str, float]:
        """``train_padding_fraction`` and ``train_real_tokens_per_second`` over the batches seen."""
        padding = 1 - self.real_tokens / self.batch_tokens if self.batch_tokens else 0.0
        return {"train_padding_fraction": round(padding, 4), "train_real_tokens": self.real_tokens,
                "train_real_tokens_per_second": round(self.real_tokens / seconds, 1) if seconds else 0.0}


class WordEvaluator:
    """Evaluates a model on labelled examples with tagtune's aligner and decoder."""

    def __init__(self, aligner: Aligner, decoder: Decoder, examples: list[Example], eval_cfg: EvalConfig,
                 autocast_dtype: torch.dtype | None):
        self.aligner, self.decoder, self.examples = aligner, decoder, examples
        self.eval_cfg, self.autocast_dtype = eval_cfg, autocast_dtype
        self.last: EvalResult | None = None

    def run(self, model: torch.nn.Module, examples: list[Example] | None = None, description: str = "evaluating") -> EvalResult:
        from tagtune.crf import decoder_for_model

        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            result = evaluate_examples(
                model_forward(model), self.aligner, examples if examples is not None else self.examples,
                decoder_for_model(model, self.decoder), batch_size=self.eval_cfg.batch_size, device=device,
                autocast_dtype=self.autocast_dtype if device.type == "cpu" else None, description=description,
            )
        finally:
            model.train(was_training)
        self.last = result
        return result

    def __call__(self, model: torch.nn.Module, prefix: str = "eval") -> dict[str, float]:
        result = self.run(model)
        metrics = flatten_metrics(result.metrics, self.eval_cfg.return_entity_level_metrics, prefix=f"{prefix}_")
        metrics[f"{prefix}_samples"] = len(self.examples)
        return metrics


def run_trainer(data_cfg: DataConfig, model_cfg: ModelConfig, align_cfg: AlignConfig, eval_cfg: EvalConfig,
                training_args, *, strict_labels: bool = False) -> dict[str, float]:
    """Fine-tune and/or evaluate and predict, writing every output into ``training_args.output_dir``.

    Args:
        strict_labels: Refuse invalid IOB sequences instead of repairing them.

    Returns:
        ``all_results``: train, eval and predict metrics (also written to ``all_results.json``).
    """
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, set_seed

    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    check_output_dir(output_dir, getattr(training_args, "overwrite_output_dir", False), bool(resume))
    check_weights(model_cfg.model_name_or_path, model_cfg.allow_pickle)  # before minutes of data reading
    set_seed(training_args.seed)
    if not bars_enabled():
        training_args.disable_tqdm = True  # the Trainer's bars follow tagtune's: off when quiet or not on a terminal

    data = prepare_data(data_cfg, strict=strict_labels)
    splits = data.corpus.splits
    _check_splits(splits, training_args)  # before training, not after it
    _check_tags(splits, training_args, data_cfg)
    tokenizer = load_tokenizer(model_cfg.tokenizer_name or model_cfg.model_name_or_path,
                               trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.model_revision,
                               cache_dir=model_cfg.cache_dir, token=model_cfg.token)
    labels, reinit = resolve_labels(model_cfg, data.labels)
    model = load_token_classifier(model_cfg, labels, reinit_head=reinit)
    if model_cfg.crf:
        from tagtune.crf import wrap_with_crf

        if align_cfg.label_all_tokens:
            raise ConfigError("--crf scores words (first sub-tokens) and cannot be combined with --label_all_tokens; "
                              "drop one of them")
        model = wrap_with_crf(model, labels, data.scheme, init_from=None if reinit else model_cfg.model_name_or_path)
    label2id = {label: i for i, label in enumerate(labels)}
    aligner = Aligner(tokenizer, align_cfg, label2id)
    decoder = Decoder(labels, data.scheme, eval_cfg.decoding)
    autocast = torch.bfloat16 if training_args.bf16 else None

    results: dict[str, float] = {}
    train_dataset = None
    if training_args.do_train:
        if "train" not in splits:
            raise ConfigError("--do_train needs --train_file or --dataset_name with a train split")
        encoding = encode_cached(aligner, splits["train"], overwrite=data_cfg.overwrite_cache, name="train")
        columns = encoding.columns()
        train_dataset = Dataset.from_dict({"input_ids": columns["input_ids"], "labels": columns["labels"],
                                           "length": [len(r) for r in columns["input_ids"]]})
        _log_summary(data, encoding, training_args)
        results["train_windowed_sentences"] = encoding.windowed_examples
        results["train_unknown_words"] = encoding.replaced_words
        results["train_long_words"] = encoding.long_words
        warn_long_words("train", encoding.long_words, encoding.first_long_word, aligner.word_cap)

    validation = splits.get("validation", [])
    evaluator = WordEvaluator(aligner, decoder, validation, eval_cfg, autocast)
    collator = CountingCollator(DataCollatorForTokenClassification(
        tokenizer, padding="max_length" if align_cfg.pad_to_max_length else "longest",
        max_length=align_cfg.max_length if align_cfg.pad_to_max_length else None,
        pad_to_multiple_of=8 if training_args.bf16 or training_args.fp16 else None))
    budget = getattr(training_args, "max_train_seconds", None)
    warmup = training_args.warmup_steps if 0 < training_args.warmup_steps < 1 else 0.0
    trainer = _make_trainer_class()(
        model=model, args=training_args, train_dataset=train_dataset,
        eval_dataset=train_dataset if validation else None, processing_class=tokenizer,
        data_collator=collator, word_evaluator=evaluator if validation else None,
        clock=TrainClock(budget, warmup) if budget else None,
    )

    if training_args.do_train:
        checkpoint = _resume_path(resume, output_dir)
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        save_final_model(trainer, tokenizer, output_dir)
        train_metrics = dict(train_result.metrics)
        train_metrics["train_samples"] = len(splits["train"])
        train_metrics.update(collator.figures(train_metrics.get("train_runtime", 0.0)))
        if training_args.should_save:  # the Trainer's save_metrics/save_state write in place: atomic here
            atomic_write_json(output_dir / "train_results.json", train_metrics)
            atomic_write_text(output_dir / "trainer_state.json", _state_json(trainer.state))
        results.update(train_metrics)
        save_run_config(output_dir, data_cfg, model_cfg, align_cfg, eval_cfg, labels, data.scheme)

    if training_args.do_eval:
        if not validation:
            raise ConfigError("--do_eval needs --validation_file or a validation split")
        metrics = evaluator(trainer.model, "eval")
        metrics["eval_windowed_sentences"] = evaluator.last.windowed_examples if evaluator.last else 0
        metrics["eval_long_words"] = evaluator.last.long_words if evaluator.last else 0
        if evaluator.last:
            warn_long_words("validation", evaluator.last.long_words, evaluator.last.first_long_word, aligner.word_cap)
        trainer.log_metrics("eval", metrics)
        atomic_write_json(output_dir / "eval_results.json", metrics)
        results.update(metrics)

    if training_args.do_predict:
        test = splits.get("test")
        if not test:
            raise ConfigError("--do_predict needs --test_file or a test split")
        result = evaluator.run(trainer.model, test, description="predicting")
        metrics = flatten_metrics(result.metrics, eval_cfg.return_entity_level_metrics, prefix="predict_") if result.metrics else {}
        metrics["predict_samples"] = len(test)
        metrics["predict_words"] = result.num_words
        metrics["predict_windowed_sentences"] = result.windowed_examples
        metrics["predict_long_words"] = result.long_words
        warn_long_words("test", result.long_words, result.first_long_word, aligner.word_cap)
        trainer.log_metrics("predict", metrics)
        atomic_write_json(output_dir / "predict_results.json", metrics)
        write_predictions(output_dir / "predictions.txt", test, result.predictions)
        results.update(metrics)

    if results:
        atomic_write_json(output_dir / "all_results.json", results)
        if training_args.should_save:  # report.html + plots/ of the last split scored (the model card cites it)
            split = "test" if training_args.do_predict else "validation"
            write_run_report(output_dir, split, splits.get(split, []), evaluator.last, trainer.state.log_history,
                             {"data": saved_fields(data_cfg), "model": saved_fields(model_cfg),
                              "align": saved_fields(align_cfg), "eval": saved_fields(eval_cfg),
                              "training": training_args.to_dict()})  # to_dict() masks hub_token
        if training_args.do_train:
            write_model_card(output_dir, model_cfg, data_cfg, labels, results, training_args)
    return results


def _check_splits(splits: dict[str, list[Example]], training_args) -> None:
    needed = {"do_train": ("train", "--train_file"), "do_eval": ("validation", "--validation_file"),
              "do_predict": ("test", "--test_file")}
    for flag, (split, file_flag) in needed.items():
        if getattr(training_args, flag) and not splits.get(split):
            raise ConfigError(f"--{flag} needs {file_flag} or --dataset_name with a {split} split")


def _check_tags(splits: dict[str, list[Example]], training_args, data_cfg: DataConfig) -> None:
    """Training and scoring need tags: refuse untagged data before any model is loaded. An untagged test
    split is only tagged (predictions.txt, no scores)."""
    from tagtune.readers import require_tags

    strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    evaluating = training_args.do_eval or (training_args.do_train and strategy != "no")
    if training_args.do_train and "train" in splits:
        require_tags(splits["train"], "train", "--do_train", data_cfg)
    if evaluating and "validation" in splits:
        # transformers turns --do_eval on by itself for an --eval_strategy: name the flag the user gave.
        during = training_args.do_train and strategy != "no"
        require_tags(splits["validation"], "validation", f"evaluation during training (--eval_strategy {strategy})"
                     if during else "--do_eval", data_cfg)
    test = splits.get("test", [])
    if training_args.do_predict and any(e.tags is not None for e in test):
        require_tags(test, "test", "scoring --do_predict", data_cfg)


def save_final_model(trainer, tokenizer, output_dir: Path) -> None:
    """Save the model, tokenizer and arguments into ``output_dir`` without ever half-writing it.

    Everything is written into ``output_dir/.partial-model`` first and then renamed into place one file
    at a time, weights last (old weights are removed first): a run killed meanwhile leaves either the
    complete new model or a directory without weights, which every loader refuses, never new settings
    with old weights. The output directory stays pickle-free (arguments as JSON).
    """
    staging = output_dir / ".partial-model"
    if trainer.args.should_save:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))  # every process: sharded models gather here
    if not trainer.args.should_save:
        return
    tokenizer.save_pretrained(staging)
    (staging / "training_args.bin").unlink(missing_ok=True)
    atomic_write_text(staging / "training_args.json", trainer.args.to_json_string())
    publish_files(staging, output_dir, last=WEIGHT_FILES)


def _state_json(state) -> str:
    """``TrainerState.save_to_json``'s text, to be written atomically."""
    import dataclasses

    return json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n"


def _rotate_checkpoints(trainer, run_dir: Path) -> None:
    """Apply ``--save_total_limit`` in ``run_dir`` (transformers 5 has a function, 4.x a method)."""
    try:
        from transformers.trainer_utils import rotate_checkpoints
    except ImportError:
        trainer._rotate_checkpoints(use_mtime=False, output_dir=str(run_dir))
        return
    rotate_checkpoints(output_dir=str(run_dir), save_total_limit=trainer.args.save_total_limit,
                       best_model_checkpoint=trainer.state.best_model_checkpoint, use_mtime=True)


def _resume_path(resume: str | bool | None, output_dir: Path) -> str | None:
    if not resume:
        return None
    if resume is True or str(resume).lower() in ("latest", "true"):
        found = last_checkpoint(output_dir)
        if found is None:
            raise OutputDirError(f"--resume_from_checkpoint latest: no complete checkpoint in '{output_dir}'")
        logger.info("resuming from %s", found)
        return str(found)
    if not Path(resume).is_dir():
        raise OutputDirError(f"--resume_from_checkpoint '{resume}' is not a checkpoint directory")
    return str(resume)


def _log_summary(data: PreparedData, encoding, training_args) -> None:
    splits = ", ".join(f"{name} {len(examples)}" for name, examples in data.corpus.splits.items())
    per_step = max(1, training_args.world_size) * training_args.gradient_accumulation_steps
    budget = getattr(training_args, "max_tokens_per_batch", 0)
    if budget:
        from tagtune.batching import token_budget_batches

        lengths = [len(ids) for ids in encoding.input_ids]
        per_epoch = math.ceil(len(token_budget_batches(lengths, budget, seed=training_args.seed)) / per_step)
        batch = f"{budget * per_step} padded sub-tokens"
    else:
        per_epoch = math.ceil(len(encoding) / (training_args.per_device_train_batch_size * per_step))
        batch = f"{training_args.per_device_train_batch_size * per_step} sentences ({training_args.train_sampling_strategy})"
    steps = training_args.max_steps if training_args.max_steps > 0 else math.ceil(per_epoch * training_args.num_train_epochs)
    logger.info(
        "sentences: %s | labels (%s, %d): %s | train windows %d (%d sentences needed several windows) | "
        "effective batch %s | optimizer steps %s",
        splits, data.scheme, len(data.labels), " ".join(data.labels), len(encoding), encoding.windowed_examples,
        batch, steps,
    )
