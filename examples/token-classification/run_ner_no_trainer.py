#!/usr/bin/env python
"""Fine-tune token classification (NER, POS, chunking) with a plain PyTorch + Accelerate loop, via tagtune.

Accepts the flags of transformers' examples/pytorch/token-classification/run_ner_no_trainer.py verbatim,
plus --test_file, --mixed_precision and tagtune's windows, decoding and label options (see --help).

    python run_ner_no_trainer.py --model_name_or_path MODEL --train_file train.json \
        --validation_file dev.json --test_file test.json --output_dir out --checkpointing_steps 500
    accelerate launch --multi_gpu --num_processes 2 run_ner_no_trainer.py ...   # 2 GPUs, or 2 CPU processes
    python run_ner_no_trainer.py ... --resume_from_checkpoint latest

This file is the loop: `tagtune train --engine accelerate` runs this very file (the package's
`tagtune/loop.py` is a link to it), so an edit here (another loss, another optimizer) changes both.
`run_loop` reads top to bottom: accelerator, data and model (tagtune's run pipeline, the same as the
Trainer engine's), loaders, optimizer, resume, `train_steps`, evaluate, save. Upstream's bugs fixed:

- Gradient accumulation uses `accelerator.accumulate` and `sync_gradients`: an epoch of B batches
  makes ceil(B / accumulation) optimizer steps, the last one at the end of the epoch.
- The scheduler is stepped by the loop once per optimizer step (not prepared: a prepared scheduler
  steps once per process, which decays too fast when --max_train_steps is given).
- Batches hold a token budget by default, or a sentence count in random or length-grouped order; the
  order is a function of seed and epoch, so `skip_first_batches` resumes exactly, mid-epoch included.
- Checkpoints are complete (model, optimizer, scheduler, RNG states, position, running loss) and atomic;
  `--resume_from_checkpoint latest` picks the newest complete one.
- Long sentences are windowed, never truncated; every input word is scored once, across processes too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from types import SimpleNamespace

import torch

from tagtune.batching import train_batches
from tagtune.cli import run_guarded
from tagtune.config import RunConfig
from tagtune.flags import parse_loop_args
from tagtune.loop_checkpoints import Position, read_position, resolve_checkpoint, save_checkpoint
from tagtune.loop_tools import (
    Clock,
    Meter,
    Step,
    advance,
    checkpoint_name,
    epochs_done,
    log_summary,
    main_process_says,
    make_accelerator,
    make_scheduler,
    parameter_groups,
    release_accelerate_state,
    shared_seed,
    tracker_config,
)
from tagtune.progress import progress_bar
from tagtune.run import Need, Push, calibrate, evaluate, finish, prepare, public_config
from tagtune.train import TrainClock

logger = logging.getLogger("tagtune.loop")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Parse ``run_ner_no_trainer.py`` flags and run the loop; returns ``all_results``."""
    config = parse_loop_args(argv)
    try:
        return run_loop(config)
    finally:
        release_accelerate_state()


def train_steps(accelerator, model, optimizer, scheduler, train_loader, start: Position,
                max_steps: int, num_epochs: int, max_grad_norm: float = 0.0) -> Iterator[Step]:
    """Train from ``start`` and yield after every optimizer step; the caller logs, evaluates, saves."""
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
                loss = model(**batch).loss  # the model's loss: cross-entropy, or the CRF's NLL with --crf
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


def run_loop(config: RunConfig) -> dict[str, float]:
    """Fine-tune, evaluate after each epoch, predict, and save everything into ``--output_dir``.

    Returns:
        ``all_results`` (the same on every process; only the main process writes files).
    """
    from accelerate.utils import set_seed
    from transformers import DataCollatorForTokenClassification

    cfg = config.loop
    accelerator = make_accelerator(cfg)
    checkpoint = resolve_checkpoint(cfg.resume_from_checkpoint, cfg.output_dir)
    seed = shared_seed(accelerator, cfg.seed, checkpoint)
    set_seed(seed)

    # Data, model, windows, cached encoding: tagtune's run pipeline, the same as the Trainer engine's.
    needs = {"train": Need("the accelerate loop trains: pass --train_file or a --dataset_name with a train split",
                           "training"),
             "validation": Need(None, "evaluation (--validation_file)"), "test": Need(None, "scoring the test split")}
    run = prepare(config, needs, output_dir=cfg.output_dir, overwrite=cfg.overwrite_output_dir,
                  resuming=checkpoint is not None, main_process_first=accelerator.main_process_first,
                  is_main=accelerator.is_main_process, model_type=cfg.model_type)
    accelerator.wait_for_everyone()  # every process has checked --output_dir before anything is written
    if accelerator.is_main_process:
        cfg.output_dir.mkdir(parents=True, exist_ok=True)

    # Loader: token-budget batches by default (or sentence-count ones), padded per batch.
    world = accelerator.num_processes
    collator = DataCollatorForTokenClassification(
        run.tokenizer, padding="max_length" if config.align.pad_to_max_length else True,
        max_length=config.align.max_length if config.align.pad_to_max_length else None,
        pad_to_multiple_of=8 if accelerator.mixed_precision in ("fp16", "bf16") else None)
    rows = [{"input_ids": ids, "labels": labels} for ids, labels in zip(run.train.input_ids, run.train.labels, strict=True)]
    batching = train_batches([len(ids) for ids in run.train.input_ids], cfg.max_tokens_per_batch,
                             cfg.train_sampling_strategy, cfg.per_device_train_batch_size, seed, world)
    # A private generator: creating the iterator must not draw from the global RNG, which would change
    # the dropout of the steps that follow (and break exact resumption).
    train_loader = torch.utils.data.DataLoader(rows, collate_fn=collator, generator=torch.Generator().manual_seed(seed),
                                               **batching)

    # Optimizer and schedule (--max_train_seconds: the learning rate decays with time, not steps).
    optimizer = torch.optim.AdamW(parameter_groups(run.model, cfg), lr=cfg.learning_rate)
    model, prepared_optimizer, train_loader = accelerator.prepare(run.model, optimizer, train_loader)
    max_steps, num_epochs = cfg.total_steps(len(train_loader))
    budget = TrainClock(cfg.max_train_seconds) if cfg.max_train_seconds else None
    scheduler = make_scheduler(optimizer, cfg, max_steps, budget)
    accelerator.register_for_checkpointing(scheduler)

    # Resume: the checkpoint's position, model, optimizer, scheduler and RNG states.
    position = Position(seed=seed, num_processes=world, per_device_train_batch_size=cfg.per_device_train_batch_size,
                        gradient_accumulation_steps=cfg.gradient_accumulation_steps, train_windows=len(run.train),
                        max_tokens_per_batch=cfg.max_tokens_per_batch,
                        train_sampling_strategy=cfg.train_sampling_strategy, crf=config.model.crf)
    if checkpoint is not None:
        saved = read_position(checkpoint)
        saved.check_compatible(position, checkpoint)
        accelerator.load_state(str(checkpoint))
        position = saved
        if accelerator.is_main_process:
            logger.info("resuming from %s: step %d, epoch %d, batch %d", checkpoint, saved.completed_steps,
                        saved.epoch, saved.batch)
    if cfg.with_tracking:
        accelerator.init_trackers("ner_no_trainer", tracker_config(public_config(config, asdict(cfg))))
    log_summary(accelerator, run, cfg, max_steps, num_epochs)

    # Train. Evaluate after each epoch, checkpoint when asked.
    clock = Clock()  # training time only, as the Trainer's train_runtime: evaluating and saving excluded
    meter = Meter(clock)
    history: list[dict[str, float]] = []  # Trainer-style log entries, for the report's learning curves
    evaluation, eval_metrics = None, {}
    if budget:
        budget.start = time.perf_counter()
    with progress_bar(total=max_steps, initial=position.completed_steps, desc="training", unit="step") as bar:
        for step in train_steps(accelerator, model, prepared_optimizer, scheduler, train_loader, position,
                                max_steps, num_epochs, cfg.max_grad_norm):
            position = advance(position, step)
            bar.update(1)
            meter.add(step)
            if step.completed_steps % cfg.logging_steps == 0 or step.end_of_epoch:
                logs = meter.flush(step)
                history.append({"step": step.completed_steps, "loss": logs["train_loss"],
                                "learning_rate": logs["learning_rate"], "epoch": round(logs["epoch"], 4)})
                if cfg.with_tracking:
                    accelerator.log(logs, step=step.completed_steps)
            with clock.paused():
                if step.end_of_epoch and run.splits.get("validation"):
                    evaluation, eval_metrics = evaluate(run, model, "validation", "eval", accelerator=accelerator)
                    history.append({"step": step.completed_steps, **eval_metrics})
                    if accelerator.is_main_process:
                        logger.info("epoch %d: %s", step.epoch, {k: round(v, 4) for k, v in eval_metrics.items()})
                    if cfg.with_tracking:
                        accelerator.log(eval_metrics, step=step.completed_steps)
                name = checkpoint_name(cfg.checkpointing_steps, step)
                if name:
                    save_checkpoint(accelerator, cfg.output_dir, name, position)
            if budget and main_process_says(accelerator, budget.elapsed() >= budget.budget):
                if not step.end_of_epoch:
                    evaluation = None  # stopped mid-epoch: the final evaluation must see these steps
                break
    runtime = clock.seconds()
    if cfg.with_tracking:
        accelerator.end_training()

    # Evaluate and predict (sharded over processes), then save: weights last, all_results.json at the end.
    results: dict[str, float] = dict(
        train_loss=position.mean_loss(), train_steps=position.completed_steps, train_runtime=round(runtime, 4),
        train_samples_per_second=round(meter.total_samples / max(runtime, 1e-9), 3),
        train_samples=len(run.splits["train"]), train_windows=len(run.train),
        train_windowed_sentences=run.train.windowed_examples, train_long_words=run.train.long_words,
        epoch=epochs_done(position, len(train_loader)), **position.padding_figures(),
        train_real_tokens_per_second=round(meter.total_tokens / max(runtime, 1e-9), 1))
    if run.splits.get("validation") and evaluation is None:  # resumed at the end, or stopped mid-epoch
        evaluation, eval_metrics = evaluate(run, model, "validation", "eval", accelerator=accelerator)
    results.update(eval_metrics)
    test_result = None
    if run.splits.get("test"):
        test_result, metrics = evaluate(run, model, "test", "predict", accelerator=accelerator, description="predicting")
        results.update(metrics)

    def save_model(staging) -> None:
        state_dict = accelerator.get_state_dict(model)  # on every process (sharded setups gather here)
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(staging, state_dict=state_dict)

    card = SimpleNamespace(**asdict(cfg), bf16=accelerator.mixed_precision == "bf16",
                           fp16=accelerator.mixed_precision == "fp16")
    calibration, summary = calibrate(run, model, accelerator=accelerator)  # --calibrate: entity scores, never tags
    push = Push(cfg.hub_model_id or cfg.output_dir.resolve().name, config.model.token) if cfg.push_to_hub else None
    finish(run, cfg.output_dir, results, evaluation=evaluation, test_result=test_result, history=history,
           training=asdict(cfg), card_settings=card, save_model=save_model, is_main=accelerator.is_main_process,
           push=push, calibration=calibration, calibration_summary=summary)
    accelerator.wait_for_everyone()
    return results


if __name__ == "__main__":
    run_guarded(main)
