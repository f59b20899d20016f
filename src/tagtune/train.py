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
from pathlib import Path
from typing import Any

import torch

from tagtune.config import RunConfig
from tagtune.errors import OutputDirError
from tagtune.evaluate import EvalResult
from tagtune.fileio import atomic_write_text, publish_dir
from tagtune.progress import bars_enabled
from tagtune.run import WEIGHT_FILES, Need, Push, Run, calibrate, evaluate, finish, log_summary, prepare

logger = logging.getLogger(__name__)


_CHECKPOINT_NAME = re.compile(r"checkpoint-([0-9]+)")


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


def run_trainer(config: RunConfig, training_args) -> dict[str, float]:
    """Fine-tune and/or evaluate and predict, writing every output into ``training_args.output_dir``.

    Returns:
        ``all_results``: train, eval and predict metrics (also written to ``all_results.json``).
    """
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification, set_seed

    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    # transformers pushes from inside save_model, before the results and the card exist: push once, at the end.
    push = Push(training_args.hub_model_id or output_dir.resolve().name, training_args.hub_token or config.model.token,
                training_args.hub_private_repo) if training_args.push_to_hub else None
    training_args.push_to_hub = False
    set_seed(training_args.seed)
    if not bars_enabled():
        training_args.disable_tqdm = True  # the Trainer's bars follow tagtune's: off when quiet or not on a terminal
    run = prepare(config, _needs(training_args), output_dir=output_dir, resuming=bool(resume),
                  overwrite=training_args.overwrite_output_dir)
    splits = run.splits
    autocast = torch.bfloat16 if training_args.bf16 else None

    results: dict[str, float] = {}
    train_dataset = None
    if training_args.do_train:
        columns = run.train.columns()
        train_dataset = Dataset.from_dict({"input_ids": columns["input_ids"], "labels": columns["labels"],
                                           "length": [len(r) for r in columns["input_ids"]]})
        _log_summary(run, training_args)
        results.update(train_windowed_sentences=run.train.windowed_examples,
                       train_unknown_words=run.train.replaced_words, train_long_words=run.train.long_words)

    validation = bool(splits.get("validation"))
    collator = CountingCollator(DataCollatorForTokenClassification(
        run.tokenizer, padding="max_length" if config.align.pad_to_max_length else "longest",
        max_length=config.align.max_length if config.align.pad_to_max_length else None,
        pad_to_multiple_of=8 if training_args.bf16 or training_args.fp16 else None))
    budget = training_args.max_train_seconds
    warmup = training_args.warmup_steps if 0 < training_args.warmup_steps < 1 else 0.0
    last: dict[str, EvalResult] = {}

    def word_evaluator(model, prefix: str, split: str = "validation") -> dict[str, float]:
        result, metrics = evaluate(run, model, split, prefix, accelerator=trainer.accelerator, autocast_dtype=autocast,
                                   description="predicting" if split == "test" else "evaluating")
        last[split] = result
        return metrics

    trainer = _make_trainer_class()(
        model=run.model, args=training_args, train_dataset=train_dataset,
        eval_dataset=train_dataset if validation else None, processing_class=run.tokenizer,
        data_collator=collator, word_evaluator=word_evaluator if validation else None,
        clock=TrainClock(budget, warmup) if budget else None,
    )

    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=_resume_path(resume, output_dir))
        train_metrics = dict(train_result.metrics)
        train_metrics["train_samples"] = len(splits["train"])
        train_metrics.update(collator.figures(train_metrics.get("train_runtime", 0.0)))
        if training_args.should_save:  # the Trainer's save_state writes in place: atomic here
            output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(output_dir / "trainer_state.json", _state_json(trainer.state))
        results.update(train_metrics)
    for flag, split, prefix in (("do_eval", "validation", "eval"), ("do_predict", "test", "predict")):
        if getattr(training_args, flag):
            metrics = word_evaluator(trainer.model, prefix, split)
            trainer.log_metrics(prefix, metrics)
            results.update(metrics)

    def save_model(staging: Path) -> None:
        trainer.save_model(str(staging))  # every process: sharded models gather here
        if trainer.args.should_save:  # the output directory stays pickle-free (arguments as JSON)
            (staging / "training_args.bin").unlink(missing_ok=True)
            atomic_write_text(staging / "training_args.json", trainer.args.to_json_string())

    calibration, summary = calibrate(run, trainer.model, accelerator=trainer.accelerator) if training_args.do_train \
        else (None, None)
    finish(run, output_dir, results, evaluation=last.get("validation"), test_result=last.get("test"),
           history=trainer.state.log_history, training=training_args.to_dict(),  # to_dict() masks hub_token
           card_settings=training_args, save_model=save_model if training_args.do_train else None,
           is_main=training_args.should_save, push=push, calibration=calibration, calibration_summary=summary)
    return results


def _needs(training_args) -> dict[str, Need]:
    """The splits a run_ner.py run uses, and why their tags are needed (before any model is loaded)."""
    strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    during = training_args.do_train and strategy != "no"
    needs = {}
    if training_args.do_train:
        needs["train"] = Need("--do_train needs --train_file or --dataset_name with a train split", "--do_train")
    if training_args.do_eval or during:
        # transformers turns --do_eval on by itself for an --eval_strategy: name the flag the user gave.
        needs["validation"] = Need("--do_eval needs --validation_file or --dataset_name with a validation split",
                                   f"evaluation during training (--eval_strategy {strategy})" if during else "--do_eval")
    if training_args.do_predict:
        needs["test"] = Need("--do_predict needs --test_file or --dataset_name with a test split", "scoring --do_predict")
    return needs


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


def _log_summary(run: Run, training_args) -> None:
    per_step = max(1, training_args.world_size) * training_args.gradient_accumulation_steps
    budget = training_args.max_tokens_per_batch
    if budget:
        from tagtune.batching import token_budget_batches

        batches = len(token_budget_batches([len(ids) for ids in run.train.input_ids], budget, seed=training_args.seed))
    else:
        batches = math.ceil(len(run.train) / training_args.per_device_train_batch_size)
    steps = training_args.max_steps if training_args.max_steps > 0 else \
        math.ceil(math.ceil(batches / per_step) * training_args.num_train_epochs)
    log_summary(run, processes=max(1, training_args.world_size), per_step=per_step, max_tokens_per_batch=budget,
                batch_size=training_args.per_device_train_batch_size,
                sampling=training_args.train_sampling_strategy, steps=steps)
