"""Complete, atomic, resumable checkpoints of the bare loop: ``step_N`` and ``epoch_N`` directories.

A checkpoint is ``accelerator.save_state`` (model, optimizer, scheduler, gradient scaler, every
process's RNG states) plus ``loop_state.json``: where the loop stands (optimizer steps done, epoch,
batches of that epoch already consumed), the running loss, and the settings that fix the batch order.
It is written into ``.tmp-<name>`` and renamed, so a directory named ``step_N`` is always complete: a
run killed while saving leaves only a ``.tmp-`` directory, which ``latest`` ignores and the next save
removes.

With ``--crf`` the saved model is the CRF wrapper: its ``model.safetensors`` holds ``crf.transitions``
beside the ``encoder.*`` weights and the optimizer state the CRF's parameter group, so resuming
restores the CRF exactly like the rest of the model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tagtune.errors import ConfigError, OutputDirError
from tagtune.fileio import atomic_write_json, publish_dir

logger = logging.getLogger(__name__)

STATE_FILE = "loop_state.json"
_NAME = re.compile(r"^(step|epoch)_(\d+)$")


@dataclass
class Position:
    """Where the loop stands, and what it must keep equal to continue exactly.

    Attributes:
        completed_steps: Optimizer steps done.
        epoch: The epoch to continue in (0-based).
        batch: Batches of that epoch each process has already consumed.
        loss_sum / loss_steps: Sum and count of per-step training losses (for the mean train loss).
        real_tokens / padded_tokens: Training tokens so far without and with padding (all processes).
        seed: The seed of the batch order (drawn once when ``--seed`` is not given).
        num_processes / per_device_train_batch_size / gradient_accumulation_steps / train_windows /
        max_tokens_per_batch / train_sampling_strategy:
            The batch order depends on these; resuming with other values would not continue the run.
        crf: The model carries a CRF (``--crf``); its state cannot be loaded into a model without one,
            nor the reverse.
    """

    completed_steps: int = 0
    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    real_tokens: int = 0
    padded_tokens: int = 0
    loss_steps: int = 0
    seed: int = 0
    num_processes: int = 1
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    train_windows: int = 0
    # Checkpoints written before token-budget batches existed used length-grouped sentence batches.
    max_tokens_per_batch: int = 0
    train_sampling_strategy: str = "group_by_length"
    crf: bool = False  # absent from checkpoints written before --crf existed: those had no CRF

    def mean_loss(self) -> float:
        """Mean training loss per optimizer step so far (0.0 before the first step)."""
        return self.loss_sum / self.loss_steps if self.loss_steps else 0.0

    def padding_figures(self) -> dict[str, float]:
        """``train_padding_fraction`` and ``train_real_tokens`` of the whole run, as the Trainer engine reports them."""
        padding = 1 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0
        return {"train_padding_fraction": round(padding, 4), "train_real_tokens": self.real_tokens}

    def check_compatible(self, current: Position, where: Path) -> None:
        """Refuse to resume with settings that change the batch order or the model's parameters.

        Raises:
            ConfigError: Names the setting, the saved and the current value.
        """
        for name in ("num_processes", "per_device_train_batch_size", "gradient_accumulation_steps", "train_windows",
                     "max_tokens_per_batch", "train_sampling_strategy"):
            saved, now = getattr(self, name), getattr(current, name)
            if saved != now:
                raise ConfigError(
                    f"{where}: the checkpoint was written with {name}={saved} but this run has {now}; resume with "
                    "the same processes, batch size, accumulation and training data, or start a new --output_dir"
                )
        if self.crf != current.crf:
            saved_with = "with" if self.crf else "without"
            raise ConfigError(f"{where}: the checkpoint was trained {saved_with} --crf; resume "
                              f"{saved_with} --crf, or start a new --output_dir")


def save_checkpoint(accelerator, output_dir: Path, name: str, position: Position) -> Path:
    """Save everything needed to continue, atomically, as ``output_dir/name``. Call on every process."""
    final, tmp = output_dir / name, output_dir / f".tmp-{name}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process has written its RNG states
    if accelerator.is_main_process:
        atomic_write_json(tmp / STATE_FILE, asdict(position))
        publish_dir(tmp, final)  # also when re-saving a step after resuming from an earlier checkpoint
        logger.info("checkpoint saved: %s", final)
    accelerator.wait_for_everyone()
    return final


def read_position(checkpoint: Path) -> Position:
    """The :class:`Position` saved in a checkpoint directory.

    Raises:
        OutputDirError: Not a complete checkpoint of this loop.
    """
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise OutputDirError(
            f"--resume_from_checkpoint '{checkpoint}' is not a complete checkpoint of the accelerate loop "
            f"(no {STATE_FILE}); pass a step_N or epoch_N directory written by it, or 'latest'"
        )
    saved = json.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(Position)}
    return Position(**{k: v for k, v in saved.items() if k in known})


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Complete ``step_N`` / ``epoch_N`` checkpoints of ``output_dir``, oldest (fewest steps) first."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        if path.is_dir() and _NAME.match(path.name) and (path / STATE_FILE).is_file():
            found.append((read_position(path).completed_steps, path.name.startswith("epoch"), path))
    return [path for *_, path in sorted(found)]


def resolve_checkpoint(resume: str | None, output_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``latest`` is the one with most optimizer steps in ``output_dir``.

    Raises:
        OutputDirError: ``latest`` finds none, or the path is not a complete checkpoint.
    """
    if not resume:
        return None
    if resume.lower() in ("latest", "last", "true"):
        found = complete_checkpoints(output_dir)
        if not found:
            raise OutputDirError(
                f"--resume_from_checkpoint latest: no complete step_N or epoch_N checkpoint in '{output_dir}'; "
                "train with --checkpointing_steps to write them"
            )
        return found[-1]
    path = Path(resume)
    if not path.is_dir():
        raise OutputDirError(f"--resume_from_checkpoint '{resume}' is not a directory")
    read_position(path)  # raises when incomplete
    return path
