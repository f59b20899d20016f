"""The public building blocks of the bare loop (``examples/token-classification/run_ner_no_trainer.py``).

The loop itself lives in the example, to be read top to bottom and edited; what it calls that is not
the loop lives here: the accelerator and its checks, the seed, the training batches, the optimizer's
parameter groups and scheduler, what one optimizer step reports (:class:`Step`), where the loop stands
after it (:func:`advance`), the training clock and the throughput meter, and the start-of-run summary.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tagtune.config import LoopConfig
from tagtune.errors import ConfigError
from tagtune.loop_checkpoints import Position, read_position

logger = logging.getLogger("tagtune.loop")

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "layernorm.weight")


def make_accelerator(cfg: LoopConfig):
    """The run's ``Accelerator``; refuses launches that would silently train otherwise than asked."""
    from accelerate import Accelerator

    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, cpu=cfg.cpu or _launched_without_gpu(),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.report_to if cfg.with_tracking else None, project_dir=str(cfg.output_dir),
    )
    check_launch(accelerator)
    return accelerator


def release_accelerate_state() -> None:
    """Forget Accelerate's process-wide state after a single-process run, so that another run in the
    same process (tests, notebooks, ``tagtune train`` twice) may use other settings."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return  # a launched process: the launcher owns the process group
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _launched_without_gpu() -> bool:
    """Several processes (torchrun, ``accelerate launch --multi_gpu``) and no GPU: train on CPU with gloo.

    Without this Accelerate would run each process as an independent single-process job.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world > 1 and not torch.cuda.is_available() and not (hasattr(torch, "xpu") and torch.xpu.is_available())


def check_launch(accelerator) -> None:
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


def shared_seed(accelerator, seed: int | None, checkpoint: Path | None) -> int:
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


def main_process_says(accelerator, value: bool) -> bool:
    """The main process's ``value`` on every process (their clocks differ slightly, and a process that
    stopped alone would leave the others waiting in the next gradient sync). Called by every process."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return bool(broadcast_object_list([value])[0])


def parameter_groups(model: torch.nn.Module, cfg: LoopConfig) -> list[dict]:
    """AdamW groups: weight decay except on biases and LayerNorms; a CRF's transitions (which start at
    zero) in their own group, at a learning rate that moves them in an epoch."""
    from tagtune.crf import crf_parameter_groups

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if any(part in name for part in _NO_DECAY) else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return crf_parameter_groups(model, groups, cfg.learning_rate)


def make_scheduler(optimizer, cfg: LoopConfig, max_steps: int, budget=None):
    """Upstream's schedule over ``max_steps``; with ``--max_train_seconds`` (``budget``, a
    :class:`tagtune.train.TrainClock`) the learning rate decays with the training time instead."""
    from transformers import get_scheduler

    if budget is not None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, budget.lr_factor)
    return get_scheduler(cfg.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=cfg.num_warmup_steps,
                         num_training_steps=max_steps)


@dataclass
class Step:
    """What one optimizer step did; the loop's ``train_steps`` yields one after every optimizer step.

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


def advance(position: Position, step: Step) -> Position:
    """The position after ``step``: a finished epoch continues at the start of the next one."""
    epoch, batch = (step.epoch + 1, 0) if step.batch >= step.batches_in_epoch else (step.epoch, step.batch)
    return replace(position, completed_steps=step.completed_steps, epoch=epoch, batch=batch,
                   loss_sum=position.loss_sum + step.loss, loss_steps=position.loss_steps + 1,
                   real_tokens=position.real_tokens + step.tokens, padded_tokens=position.padded_tokens + step.padded_tokens)


def epochs_done(position: Position, batches_per_epoch: int) -> float:
    return round(position.epoch + position.batch / max(1, batches_per_epoch), 4)


def checkpoint_name(every: int | str | None, step: Step) -> str | None:
    """``step_N`` / ``epoch_N`` when ``--checkpointing_steps`` asks for a checkpoint after ``step``."""
    if every == "epoch":
        return f"epoch_{step.epoch}" if step.batch >= step.batches_in_epoch else None
    if isinstance(every, int) and step.completed_steps % every == 0:
        return f"step_{step.completed_steps}"
    return None


class Clock:
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


class Meter:
    """Loss, learning rate and throughput since the last tracker log."""

    def __init__(self, clock: Clock) -> None:
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


def tracker_config(public: dict[str, dict]) -> dict[str, str | int | float | bool]:
    """Flat, scalar hyper-parameters (TensorBoard's hparams take nothing else)."""
    return {f"{section}.{key}": value if isinstance(value, (int, float, bool, str)) else str(value)
            for section, values in public.items() for key, value in values.items()}


def log_summary(accelerator, run, cfg: LoopConfig, max_steps: int, num_epochs: int) -> None:
    """The run pipeline's start-of-run line, from the main process, with the device and precision."""
    from tagtune.run import log_summary as summary

    if accelerator.is_main_process:
        summary(run, processes=accelerator.num_processes, per_step=accelerator.num_processes * cfg.gradient_accumulation_steps,
                max_tokens_per_batch=cfg.max_tokens_per_batch, batch_size=cfg.per_device_train_batch_size,
                sampling=cfg.train_sampling_strategy, steps=max_steps,
                where=f" on {accelerator.device}, mixed precision {accelerator.mixed_precision}, {num_epochs} epoch(s)")
