"""Typed configuration: frozen dataclasses that flow from the CLI / example scripts into the package.

Each function receives the slice it needs (``DataConfig`` for readers, ``AlignConfig`` for alignment,
and so on), never an argparse namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Task = Literal["ner", "pos", "chunk"]
Format = Literal["auto", "conll", "conllu", "json", "jsonl", "csv"]


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
        overwrite_cache: Recompute the cached tokenization instead of reusing it.
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
    token: str | None = None
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
    """

    batch_size: int = 32
    decoding: Literal["viterbi", "argmax"] = "viterbi"
    return_entity_level_metrics: bool = False
