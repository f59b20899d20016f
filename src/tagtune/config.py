"""Typed configuration: frozen dataclasses that flow from the CLI / example scripts into the package.

Each function receives the slice it needs (``DataConfig`` for readers, ``AlignConfig`` for alignment,
and so on), never an argparse namespace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Task = Literal["ner", "pos", "chunk"]
Format = Literal["auto", "conll", "conllu", "json", "jsonl", "csv", "spans", "labelstudio", "brat"]


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how to read it.

    Attributes:
        dataset_name: A hub data set name for ``datasets.load_dataset`` (``"conll2003"``).
        dataset_config_name: Its configuration name.
        train_file / validation_file / test_file: Local files; the format is detected from the
            extension and content unless ``format`` says otherwise.
        format: ``auto`` or one of ``conll conllu json jsonl csv``.
        task_name: ``ner``, ``pos`` or ``chunk``: which tag column to read (``{task}_tags`` in
            JSON/CSV; column -1, 1, 2 in CoNLL-2003 column files; UPOS/XPOS in CoNLL-U for ``pos``).
        text_column_name: Column holding the words (default ``tokens``, else the first column).
        label_column_name: Column holding the tags (default ``{task}_tags``).
        label_column: 0-based column index of the tags in CoNLL column files (negative counts from
            the end); overrides the task-based choice.
        label_names_file: JSON file naming integer ids: a list, or ``{column: [names]}`` as in
            ``labels.json``.
        conllu_tag: ``upos`` (default) or ``xpos`` for CoNLL-U files.
        cache_dir: Cache directory for hub data sets.
        token: Hub token for private data sets (never saved, never shown).
        overwrite_cache: Recompute the cached tokenization instead of reusing it.
        preprocessing_num_workers: Tokenize the training data in that many processes.
        overlapping_spans: Span data: ``error`` on overlapping spans, or keep the ``longest`` (one warning).
        annotator: Label Studio exports: whose annotation to read (``latest``, ``first``, ``predictions``, an id).
    """

    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_file: Path | None = None
    validation_file: Path | None = None
    test_file: Path | None = None
    format: Format = "auto"
    task_name: Task = "ner"
    text_column_name: str | None = None
    label_column_name: str | None = None
    label_column: int | None = None
    label_names_file: Path | None = None
    conllu_tag: Literal["upos", "xpos"] = "upos"
    cache_dir: Path | None = None
    overwrite_cache: bool = False
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None
    overlapping_spans: Literal["error", "longest"] = "error"
    annotator: str = "latest"
    preprocessing_num_workers: int | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AlignConfig:
    """How words become sub-token model inputs.

    Attributes:
        max_length: Longest model input in sub-tokens, special tokens included. Longer sentences are
            split into overlapping windows, never truncated.
        stride: Sub-tokens shared by consecutive windows (context on each side of a cut); ``None``:
            a quarter of the window, at most 32.
        label_all_tokens: Label every sub-token of a word (``B-`` continues as ``I-``), not only the
            first.
        pad_to_max_length: Pad every input to ``max_length`` (upstream flag); otherwise pad to the
            longest in the batch.
        context_size: Sub-tokens of document context on each side (0: none).
    """

    max_length: int = 128
    stride: int | None = None
    label_all_tokens: bool = False
    pad_to_max_length: bool = False
    context_size: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Which pretrained model to start from and how to load it safely.

    Attributes:
        model_name_or_path: A local model directory (or a hub name when online).
        config_name / tokenizer_name: Alternatives to ``model_name_or_path`` for those parts.
        trust_remote_code: Run code shipped with the model (off unless asked).
        ignore_mismatched_sizes: Replace a classification head whose labels differ.
        allow_pickle: Accept pickled ``.bin``/``.pt`` weights (off: safetensors only).
        crf: Put a linear-chain CRF on top of the encoder.
    """

    model_name_or_path: str
    config_name: str | None = None
    tokenizer_name: str | None = None
    cache_dir: str | None = None
    model_revision: str = "main"
    token: str | None = field(default=None, repr=False)
    trust_remote_code: bool = False
    ignore_mismatched_sizes: bool = False
    allow_pickle: bool = False
    crf: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """How predictions are made and scored.

    Attributes:
        batch_size: Windows per forward pass (length-sorted, padded to the longest).
        decoding: ``viterbi`` (only valid tag sequences) or ``argmax`` (each word on its own).
        return_entity_level_metrics: Report precision/recall/F1 per entity type (upstream flag).
        calibrate: After training, fit a temperature for entity scores on the validation split
            (``calibration.json``; scores change, tags never).
        calibrate_per_label: With ``calibrate``: one temperature per label.
    """

    batch_size: int = 32
    decoding: Literal["viterbi", "argmax"] = "viterbi"
    return_entity_level_metrics: bool = False
    calibrate: bool = False
    calibrate_per_label: bool = False


@dataclass(frozen=True)
class LoopConfig:
    """How the bare loop trains, checkpoints and logs (the Trainer engine's are ``TrainingArguments``).

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
    push_to_hub: bool = False
    hub_model_id: str | None = None

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


@dataclass(frozen=True)
class RunConfig:
    """One run's typed settings, as both parsers (:mod:`tagtune.flags`) build them.

    Attributes:
        strict_labels: Refuse invalid IOB sequences instead of repairing them.
        loop: The bare loop's own settings (``None`` for the Trainer engine, whose are ``TrainingArguments``).
    """

    data: DataConfig
    model: ModelConfig
    align: AlignConfig
    eval: EvalConfig
    strict_labels: bool = False
    loop: LoopConfig | None = None
