"""The bare training loop: plain PyTorch + Accelerate, from one CPU to many GPUs, resumable.

This is what ``examples/token-classification/run_ner_no_trainer.py`` and ``tagtune train --engine
accelerate`` run. :func:`run_loop` reads top to bottom: accelerator, data, model, loaders, optimizer,
resume, :func:`train_steps`, save. Data preparation, windows, decoding and metrics are tagtune's, the
same as the Trainer engine's; the rest is the usual Accelerate loop with upstream's bugs fixed:

- Gradient accumulation uses ``accelerator.accumulate`` and ``sync_gradients``: an epoch of ``B``
  batches makes ``ceil(B / accumulation)`` optimizer steps, the last one at the end of the epoch.
- The learning-rate scheduler is stepped by the loop once per optimizer step (not prepared: a
  prepared scheduler steps once per process, which decays ``num_processes`` times too fast).
- Batches hold a token budget by default (as the Trainer engine's; :func:`train_batches`), or a
  sentence count in random or length-grouped order; the order is a function of seed and epoch, the
  same on every process and recomputable on resume, so ``skip_first_batches`` continues exactly
  where a checkpoint stopped.
- Checkpoints are complete (model, optimizer, scheduler, RNG states, position in the epoch, running
  loss) and atomic; ``--resume_from_checkpoint latest`` really picks the newest complete one.

``--crf`` puts tagtune's linear-chain CRF on the model (:mod:`tagtune.crf`), as the Trainer engine
does: the wrapped model's forward returns the CRF's negative log-likelihood as its loss, the CRF's
transitions get their own parameter group, evaluation decodes with them, and the model directory gets
``crf.safetensors``. At the end the evaluated split is rendered as ``report.html`` (learning curves of
the steps this process ran).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from tagtune.align import Aligner, load_tokenizer, warn_long_words
from tagtune.batching import EpochRandomSampler, TokenBudgetBatchSampler
from tagtune.cache import encode_cached
from tagtune.corpus import Example
from tagtune.crf import crf_parameter_groups, wrap_with_crf
from tagtune.decode import Decoder
from tagtune.errors import ConfigError
from tagtune.evaluate import EvalResult, write_predictions
from tagtune.fileio import atomic_write_json, publish_files
from tagtune.loop_args import LoopArgs, LoopConfig, parse_loop_args
from tagtune.loop_checkpoints import Position, read_position, resolve_checkpoint, save_checkpoint
from tagtune.loop_eval import ShardedEvaluator
from tagtune.metrics import flatten_metrics
from tagtune.modeling import load_token_classifier, resolve_labels
from tagtune.outputs import save_run_config, saved_fields, write_model_card
from tagtune.progress import progress_bar
from tagtune.report import write_run_report
from tagtune.train import WEIGHT_FILES, TrainClock, check_output_dir, prepare_data

logger = logging.getLogger(__name__)

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse ``run_ner_no_trainer.py`` flags and run the loop; returns ``all_results``."""
    args = parse_loop_args(argv)
    try:
        return run_loop(args)
    finally:
        _release_accelerate_state()


def _release_accelerate_state() -> None:
    """Forget Accelerate's process-wide state after a single-process run, so that another run in the
    same process (tests, notebooks, ``tagtune train`` twice) may use other settings."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return  # a launched process: the launcher owns the process group
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@dataclass
class Step:
    """What one optimizer step did; :func:`train_steps` yields one after every optimizer step.

    Attributes:
        completed_steps: Optimizer steps done so far (this one included).
        epoch / batch: The epoch and how many of its batches this process has consumed.
        end_of_epoch: The epoch is over: its last batch, or the last step of the run.
        loss: Mean training loss of the step's batches, averaged over processes.
        learning_rate: The scheduler's rate for the next step.
        samples / tokens: Windows and non-padding tokens of the step, over all processes.
        padded_tokens: Tokens of the step's batches, padding included, over all processes.
    """

    completed_steps: int
    epoch: int
    batch: int
    batches_in_epoch: int
    end_of_epoch: bool
    loss: float
    learning_rate: float
    samples: int
    tokens: int
    padded_tokens: int = 0


def train_steps(accelerator, model, optimizer, scheduler, train_loader, start: Position,
                max_steps: int, num_epochs: int, max_grad_norm: float = 0.0) -> Iterator[Step]:
    """Train from ``start`` and yield after every optimizer step; the caller logs, evaluates, saves.

    ``max_grad_norm > 0`` clips the global gradient norm before each optimizer step, as the Trainer does.
    """
    completed = start.completed_steps
    if completed >= max_steps:
        return  # resumed from the end of the run
    model.train()
    for epoch in range(start.epoch, num_epochs):
        skip = start.batch if epoch == start.epoch else 0
        train_loader.set_epoch(epoch)  # the sampler's order is a function of (seed, epoch) only
        batches = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
        batches.set_epoch(epoch)
        batch_index, losses, samples, tokens, padded = skip, [], 0, 0, 0
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)  # divides by the accumulation steps
                if max_grad_norm > 0 and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()  # a no-op until sync_gradients
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    scheduler.step()
                optimizer.zero_grad()
            batch_index += 1
            losses.append(loss.detach().float())
            samples += batch["input_ids"].shape[0]
            tokens += batch["attention_mask"].sum()
            padded += batch["attention_mask"].numel()
            if not accelerator.sync_gradients:
                continue
            completed += 1
            step_loss = accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()
            yield Step(
                completed_steps=completed, epoch=epoch, batch=batch_index, batches_in_epoch=len(train_loader),
                end_of_epoch=batch_index == len(train_loader) or completed >= max_steps, loss=step_loss,
                learning_rate=scheduler.get_last_lr()[0], samples=samples * accelerator.num_processes,
                tokens=int(tokens) * accelerator.num_processes, padded_tokens=padded * accelerator.num_processes,
            )
            losses, samples, tokens, padded = [], 0, 0, 0
            if completed >= max_steps:
                return


def run_loop(args: LoopArgs) -> dict[str, float]:
    """Fine-tune, evaluate after each epoch, predict, and save everything into ``--output_dir``.

    Returns:
        ``all_results`` (the same on every process; only the main process writes files).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import DataCollatorForTokenClassification, get_scheduler

    cfg = args.loop
    output_dir = cfg.output_dir
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, cpu=cfg.cpu or _launched_without_gpu(),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.report_to if cfg.with_tracking else None, project_dir=str(output_dir),
    )
    _check_launch(accelerator)
    check_output_dir(output_dir, cfg.overwrite_output_dir, bool(cfg.resume_from_checkpoint))
    checkpoint = resolve_checkpoint(cfg.resume_from_checkpoint, output_dir)
    seed = _shared_seed(accelerator, cfg.seed, checkpoint)
    set_seed(seed)
    accelerator.wait_for_everyone()  # every process has checked --output_dir before anything is written
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)

    # Data: read, check the labels, cut sentences into windows (shared with the Trainer engine).
    with accelerator.main_process_first():
        data = prepare_data(args.data, strict=args.strict_labels)
    splits = _limit(data.corpus.splits, args)
    if not splits.get("train"):
        raise ConfigError("the accelerate loop trains: pass --train_file or a --dataset_name with a train split")
    _check_tags(splits, args)
    tokenizer = load_tokenizer(args.model.tokenizer_name or args.model.model_name_or_path,
                               trust_remote_code=args.model.trust_remote_code, revision=args.model.model_revision,
                               cache_dir=args.model.cache_dir, token=args.model.token)
    model, labels = _load_model(args, cfg.model_type, data.labels, data.scheme)
    aligner = Aligner(tokenizer, args.align, {label: i for i, label in enumerate(labels)})
    decoder = Decoder(labels, data.scheme, args.eval.decoding)
    with accelerator.main_process_first():  # the main process tokenizes and caches, the others read the cache
        train = encode_cached(aligner, splits["train"], overwrite=args.data.overwrite_cache, name="train")
    if accelerator.is_main_process:
        warn_long_words("train", train.long_words, train.first_long_word, aligner.word_cap)

    # Loaders: token-budget training batches by default (or sentence-count ones), padded per batch.
    world = accelerator.num_processes
    multiple = 8 if accelerator.mixed_precision in ("fp16", "bf16") else None
    collator = DataCollatorForTokenClassification(
        tokenizer, padding="max_length" if args.align.pad_to_max_length else True,
        max_length=args.align.max_length if args.align.pad_to_max_length else None, pad_to_multiple_of=multiple)
    rows = [{"input_ids": ids, "labels": labs} for ids, labs in zip(train.input_ids, train.labels, strict=True)]
    # A private generator: creating the iterator must not draw from the global RNG, which would change
    # the dropout of the steps that follow (and break exact resumption).
    train_loader = torch.utils.data.DataLoader(rows, collate_fn=collator, generator=torch.Generator().manual_seed(seed),
                                               **train_batches(train, cfg, seed, world))
    # A CRF's transitions start at zero: their own group, at a learning rate that moves them in an epoch.
    groups = crf_parameter_groups(model, _parameter_groups(model, cfg.weight_decay), cfg.learning_rate)
    optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    model, prepared_optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    evaluators = {split: ShardedEvaluator(accelerator, aligner, decoder, splits[split], cfg.per_device_eval_batch_size)
                  for split in ("validation", "test") if splits.get(split)}
    for split, evaluator in evaluators.items():
        if accelerator.is_main_process:
            warn_long_words(split, evaluator.encoding.long_words, evaluator.encoding.first_long_word, aligner.word_cap)

    max_steps, num_epochs = cfg.total_steps(len(train_loader))
    # --max_train_seconds: the learning rate decays with the training time instead of the steps.
    budget = TrainClock(cfg.max_train_seconds) if cfg.max_train_seconds else None
    scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor) if budget else
                 get_scheduler(cfg.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=cfg.num_warmup_steps,
                               num_training_steps=max_steps))
    accelerator.register_for_checkpointing(scheduler)
    position = Position(seed=seed, num_processes=world, per_device_train_batch_size=cfg.per_device_train_batch_size,
                        gradient_accumulation_steps=cfg.gradient_accumulation_steps, train_windows=len(train),
                        max_tokens_per_batch=cfg.max_tokens_per_batch,
                        train_sampling_strategy=cfg.train_sampling_strategy, crf=args.model.crf)
    if checkpoint is not None:
        saved = read_position(checkpoint)
        saved.check_compatible(position, checkpoint)
        accelerator.load_state(str(checkpoint))
        position = saved
        if accelerator.is_main_process:
            logger.info("resuming from %s: step %d, epoch %d, batch %d", checkpoint, saved.completed_steps,
                        saved.epoch, saved.batch)
    if cfg.with_tracking:
        accelerator.init_trackers("ner_no_trainer", _tracker_config(args))
    _log_summary(accelerator, splits, labels, data.scheme, train, cfg, max_steps, num_epochs)

    # Train. Evaluate after each epoch, checkpoint when asked.
    clock = _Clock()  # training time only, as the Trainer's train_runtime: evaluating and saving excluded
    meter = _Meter(clock)
    history: list[dict[str, float]] = []  # Trainer-style log entries, for the report's learning curves
    evaluation: EvalResult | None = None
    if budget:
        budget.start = time.perf_counter()
    with progress_bar(total=max_steps, initial=position.completed_steps, desc="training", unit="step") as bar:
        for step in train_steps(accelerator, model, prepared_optimizer, scheduler, train_loader, position,
                                max_steps, num_epochs, cfg.max_grad_norm):
            position = _advance(position, step)
            bar.update(1)
            meter.add(step)
            if step.completed_steps % cfg.logging_steps == 0 or step.end_of_epoch:
                logs = meter.flush(step)
                history.append({"step": step.completed_steps, "loss": logs["train_loss"],
                                "learning_rate": logs["learning_rate"], "epoch": round(logs["epoch"], 4)})
                if cfg.with_tracking:
                    accelerator.log(logs, step=step.completed_steps)
            with clock.paused():
                if step.end_of_epoch and "validation" in evaluators:
                    evaluation = evaluators["validation"].run(model)
                    metrics = _eval_metrics(evaluation, args, "eval", evaluators["validation"])
                    history.append({"step": step.completed_steps, **metrics})
                    if accelerator.is_main_process:
                        logger.info("epoch %d: %s", step.epoch, {k: round(v, 4) for k, v in metrics.items()})
                    if cfg.with_tracking:
                        accelerator.log(metrics, step=step.completed_steps)
                name = _checkpoint_name(cfg.checkpointing_steps, step)
                if name:
                    save_checkpoint(accelerator, output_dir, name, position)
            if budget and _main_process_says(accelerator, budget.elapsed() >= budget.budget):
                if not step.end_of_epoch:
                    evaluation = None  # stopped mid-epoch: the final evaluation must see these steps
                break
    runtime = clock.seconds()
    if cfg.with_tracking:
        accelerator.end_training()

    results: dict[str, float] = dict(
        train_loss=position.mean_loss(), train_steps=position.completed_steps, train_runtime=round(runtime, 4),
        train_samples_per_second=round(meter.total_samples / max(runtime, 1e-9), 3),
        train_samples=len(splits["train"]), train_windows=len(train),
        train_windowed_sentences=train.windowed_examples, train_long_words=train.long_words,
        epoch=_epochs_done(position, len(train_loader)),
        **position.padding_figures(), train_real_tokens_per_second=round(meter.total_tokens / max(runtime, 1e-9), 1))
    if "validation" in evaluators:
        if evaluation is None:  # resumed from the end of training: nothing ran yet
            evaluation = evaluators["validation"].run(model)
        results.update(_eval_metrics(evaluation, args, "eval", evaluators["validation"]))
    test_result = evaluators["test"].run(model, "predicting") if "test" in evaluators else None
    if test_result is not None:
        results.update(_eval_metrics(test_result, args, "predict", evaluators["test"]))
    if accelerator.is_main_process:  # before the model card, which cites the report
        _write_report(args, splits, evaluation, test_result, history)
    _save_outputs(accelerator, model, tokenizer, args, labels, data.scheme, results, splits, test_result)
    return results


def train_batches(train, cfg: LoopConfig, seed: int, world: int) -> dict:
    """``DataLoader`` arguments for the training batches: their order depends only on ``(seed, epoch)``,
    the same on every process, so a resumed run skips exactly the batches it already trained on.

    Token-budget batches (the default) keep about ``max_tokens_per_batch`` padded sub-tokens a batch;
    Accelerate deals whole batches to the processes. Sentence-count batches are random (upstream) or
    length-grouped over the *global* batch (per-device batch x processes).
    """
    lengths = [len(ids) for ids in train.input_ids]
    if cfg.max_tokens_per_batch:
        return {"batch_sampler": TokenBudgetBatchSampler(lengths, cfg.max_tokens_per_batch, seed=seed)}
    if cfg.train_sampling_strategy == "group_by_length":
        sampler = EpochLengthGroupedSampler(lengths, cfg.per_device_train_batch_size * world, seed)
    elif cfg.train_sampling_strategy == "random":
        sampler = EpochRandomSampler(len(lengths), seed)
    else:
        raise ConfigError(f"the accelerate loop batches sentences 'random' or 'group_by_length', not "
                          f"'{cfg.train_sampling_strategy}'")
    return {"batch_size": cfg.per_device_train_batch_size, "sampler": sampler}


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' ``LengthGroupedSampler`` whose order depends only on ``(seed, epoch)``.

    Built over the *global* batch (per-device batch x processes), so every process draws the same order
    and Accelerate deals consecutive per-device batches of similar length to the processes. Resuming
    recomputes the epoch's order and skips the batches already trained on.
    """

    def __init__(self, lengths: list[int], global_batch_size: int, seed: int):
        super().__init__(global_batch_size, lengths=lengths, generator=torch.Generator())
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.generator.manual_seed(self.seed + epoch)


def _main_process_says(accelerator, value: bool) -> bool:
    """The main process's ``value`` on every process (their clocks differ slightly, and a process that
    stopped alone would leave the others waiting in the next gradient sync). Called by every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return bool(broadcast_object_list([value])[0])


def _launched_without_gpu() -> bool:
    """Several processes (torchrun, ``accelerate launch --multi_gpu``) and no GPU: train on CPU with gloo.

    Without this Accelerate would run each process as an independent single-process job.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > 1 and not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available())


def _check_launch(accelerator) -> None:
    """Refuse set-ups that would silently train with fewer processes or an unsupported precision."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and accelerator.num_processes != world:
        raise ConfigError(
            f"{world} processes were launched but Accelerate runs them as {accelerator.num_processes}-process "
            "jobs; pass --cpu to train on CPU, or check the accelerate config"
        )
    if (os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in os.environ
            and accelerator.num_processes == 1 and accelerator.is_main_process):
        logger.warning(
            "`accelerate launch --cpu --num_processes N` starts N processes only through mpirun "
            "(--mpirun_hostfile); this is one process. For several CPU processes use `accelerate launch "
            "--multi_gpu --num_processes N` (no GPU visible: the loop trains on CPU) or `torchrun --nproc_per_node N`"
        )
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ConfigError("--mixed_precision fp16 needs a GPU; use --mixed_precision bf16 on CPU")


def _shared_seed(accelerator, seed: int | None, checkpoint: Path | None) -> int:
    """The run's seed: the checkpoint's, else ``--seed``, else one drawn on the main process for all."""
    if checkpoint is not None:
        saved = read_position(checkpoint).seed
        if seed is not None and seed != saved and accelerator.is_main_process:
            logger.warning("--seed %d ignored: the checkpoint was trained with seed %d", seed, saved)
        return saved
    if seed is not None:
        return seed
    from accelerate.utils import broadcast_object_list

    drawn = [int.from_bytes(os.urandom(4), "little") % 2**31]
    return int(broadcast_object_list(drawn)[0]) if accelerator.num_processes > 1 else drawn[0]


def _limit(splits: dict[str, list[Example]], args: LoopArgs) -> dict[str, list[Example]]:
    limits = {"train": args.data.max_train_samples, "validation": args.data.max_eval_samples,
              "test": args.data.max_predict_samples}
    return {name: examples[: limits[name]] if limits.get(name) else examples for name, examples in splits.items()}


def _load_model(args: LoopArgs, model_type: str | None, data_labels: list[str], scheme: str):
    """The model to train and its labels; with ``--crf`` wrapped in a CRF, whose transitions continue
    those of the starting model's ``crf.safetensors`` when it has one for the same labels."""
    if args.model.model_name_or_path:
        labels, reinit = resolve_labels(args.model, data_labels)
        model = load_token_classifier(args.model, labels, reinit_head=reinit)
        init_from = None if reinit else args.model.model_name_or_path
    else:
        from transformers import AutoConfig, AutoModelForTokenClassification

        logger.info("training a new %s model from scratch", model_type)
        labels, init_from = list(data_labels), None
        id2label = dict(enumerate(labels))
        config = AutoConfig.for_model(model_type, num_labels=len(labels), id2label=id2label,
                                      label2id={label: i for i, label in id2label.items()})
        model = AutoModelForTokenClassification.from_config(
            config, trust_remote_code=args.model.trust_remote_code)
    if args.model.crf:
        model = wrap_with_crf(model, labels, scheme, init_from=init_from)
    return model, labels


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if any(part in name for part in _NO_DECAY) else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _advance(position: Position, step: Step) -> Position:
    """The position after ``step``: a finished epoch continues at the start of the next one."""
    epoch, batch = (step.epoch + 1, 0) if step.batch >= step.batches_in_epoch else (step.epoch, step.batch)
    return replace(position, completed_steps=step.completed_steps, epoch=epoch, batch=batch,
                   loss_sum=position.loss_sum + step.loss, loss_steps=position.loss_steps + 1,
                   real_tokens=position.real_tokens + step.tokens, padded_tokens=position.padded_tokens + step.padded_tokens)


def _epochs_done(position: Position, batches_per_epoch: int) -> float:
    return round(position.epoch + position.batch / max(1, batches_per_epoch), 4)


def _checkpoint_name(every: int | str | None, step: Step) -> str | None:
    if every == "epoch":
        return f"epoch_{step.epoch}" if step.batch >= step.batches_in_epoch else None
    if isinstance(every, int) and step.completed_steps % every == 0:
        return f"step_{step.completed_steps}"
    return None


class _Clock:
    """Training seconds: wall time minus the time spent evaluating and saving."""

    def __init__(self) -> None:
        self.start, self.excluded = time.perf_counter(), 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - began

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded


class _Meter:
    """Loss, learning rate and throughput since the last tracker log."""

    def __init__(self, clock: _Clock) -> None:
        self.clock, self.total_samples, self.total_tokens = clock, 0, 0
        self._reset()

    def _reset(self) -> None:
        self.losses: list[float] = []
        self.samples = self.tokens = 0
        self.since = self.clock.seconds()

    def add(self, step: Step) -> None:
        self.losses.append(step.loss)
        self.samples += step.samples
        self.tokens += step.tokens
        self.total_samples += step.samples
        self.total_tokens += step.tokens

    def flush(self, step: Step) -> dict[str, float]:
        elapsed = max(self.clock.seconds() - self.since, 1e-9)
        logs = {"train_loss": sum(self.losses) / max(1, len(self.losses)), "learning_rate": step.learning_rate,
                "samples_per_second": self.samples / elapsed, "tokens_per_second": self.tokens / elapsed,
                "epoch": step.epoch + step.batch / max(1, step.batches_in_epoch)}
        self._reset()
        return logs


def _eval_metrics(result: EvalResult, args: LoopArgs, prefix: str, evaluator: ShardedEvaluator) -> dict[str, float]:
    metrics = flatten_metrics(result.metrics, args.eval.return_entity_level_metrics, prefix=f"{prefix}_") \
        if result.metrics else {}
    metrics[f"{prefix}_samples"] = len(evaluator.examples)
    metrics[f"{prefix}_words"] = result.num_words
    metrics[f"{prefix}_windowed_sentences"] = result.windowed_examples
    metrics[f"{prefix}_long_words"] = result.long_words
    return metrics


def _check_tags(splits: dict[str, list[Example]], args: LoopArgs) -> None:
    """Training and scoring need tags: refuse untagged data before any model is loaded (an untagged test
    split is only tagged: predictions.txt, no scores)."""
    from tagtune.readers import require_tags

    require_tags(splits["train"], "train", "training", args.data)
    if splits.get("validation"):
        require_tags(splits["validation"], "validation", "evaluation (--validation_file)", args.data)
    test = splits.get("test", [])
    if any(e.tags is not None for e in test):
        require_tags(test, "test", "scoring the test split", args.data)


def _write_report(args: LoopArgs, splits: dict[str, list[Example]], evaluation: EvalResult | None,
                  test_result: EvalResult | None, history: list[dict[str, float]]) -> None:
    """``report.html`` (+ ``report.json``, ``plots/``) of the test split when it is labelled, else of the
    validation split, as the Trainer engine writes it; nothing when neither was scored."""
    split, result = ("test", test_result) if test_result is not None and test_result.metrics \
        else ("validation", evaluation)
    write_run_report(args.loop.output_dir, split, splits.get(split, []), result, history or None,
                     _public_config(args))


def _save_outputs(accelerator, model, tokenizer, args: LoopArgs, labels: list[str], scheme: str,
                  results: dict[str, float], splits: dict[str, list[Example]], test_result: EvalResult | None) -> None:
    """Model (safetensors, named labels; ``crf.safetensors`` with ``--crf``), tokenizer, run config, results,
    predictions; each file atomic."""
    output_dir = args.loop.output_dir
    state_dict = accelerator.get_state_dict(model)  # on every process (sharded setups gather here)
    if accelerator.is_main_process:
        staging = output_dir / ".tmp-model"
        shutil.rmtree(staging, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(staging, state_dict=state_dict)
        tokenizer.save_pretrained(staging)
        publish_files(staging, output_dir, last=WEIGHT_FILES)
        save_run_config(output_dir, args.data, args.model, args.align, args.eval, labels, scheme)
        train = {k: v for k, v in results.items() if k.startswith("train_") or k == "epoch"}
        atomic_write_json(output_dir / "train_results.json", train)
        evaluation = {k: v for k, v in results.items() if k.startswith("eval_")}
        if evaluation:
            atomic_write_json(output_dir / "eval_results.json", evaluation)
        if test_result is not None:
            atomic_write_json(output_dir / "predict_results.json",
                              {k: v for k, v in results.items() if k.startswith("predict_")})
            write_predictions(output_dir / "predictions.txt", splits["test"], test_result.predictions)
        cfg = args.loop
        settings = SimpleNamespace(**asdict(cfg), bf16=accelerator.mixed_precision == "bf16",
                                   fp16=accelerator.mixed_precision == "fp16")
        write_model_card(output_dir, args.model, args.data, labels, results, settings)
        atomic_write_json(output_dir / "all_results.json", results)  # last: the run is complete
        logger.info("model and results saved in %s", output_dir)
    accelerator.wait_for_everyone()


def _public_config(args: LoopArgs) -> dict[str, dict]:
    """The run's settings for the report and the trackers: the allow-listed fields of the sections a model
    directory saves (never ``--hub_token``), and the loop's own (which hold no secret)."""
    config = {section: saved_fields(getattr(args, section)) for section in ("data", "model", "align", "eval")}
    config["loop"] = asdict(args.loop)
    return config


def _tracker_config(args: LoopArgs) -> dict[str, str | int | float | bool]:
    """Flat, scalar hyper-parameters (TensorBoard's hparams take nothing else)."""
    flat: dict[str, str | int | float | bool] = {}
    for section, values in _public_config(args).items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value if isinstance(value, (int, float, bool, str)) else str(value)
    return flat


def _log_summary(accelerator, splits, labels, scheme, train, cfg: LoopConfig, max_steps: int, num_epochs: int) -> None:
    if not accelerator.is_main_process:
        return
    sizes = ", ".join(f"{name} {len(examples)}" for name, examples in splits.items())
    per_step = accelerator.num_processes * cfg.gradient_accumulation_steps
    batch = (f"{cfg.max_tokens_per_batch * per_step} padded sub-tokens" if cfg.max_tokens_per_batch
             else f"{cfg.per_device_train_batch_size * per_step} sentences ({cfg.train_sampling_strategy})")
    logger.info(
        "sentences: %s | labels (%s, %d): %s | train windows %d (%d sentences needed several) | %d process(es) "
        "on %s, mixed precision %s | effective batch %s | optimizer steps %d over %d epoch(s)",
        sizes, scheme, len(labels), " ".join(labels), len(train), train.windowed_examples, accelerator.num_processes,
        accelerator.device, accelerator.mixed_precision, batch, max_steps, num_epochs,
    )
