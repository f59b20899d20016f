"""Reading token-classification data, from files or hub data sets, into a :class:`~tagtune.corpus.Corpus`.

Formats: CoNLL column files, CoNLL-U, JSON (a list of records or ``{"data": [...]}``), JSON lines and
CSV (see :mod:`tagtune.readers_columns` and :mod:`tagtune.readers_records`), text with labelled
character spans from annotation tools (``spans``, ``labelstudio``, ``brat``: :mod:`tagtune.readers_spans`),
plus ``datasets`` data sets. Tags leave the readers as names: integer ids are named by ``--label_names_file``, a
``labels.json`` beside the file, or ``ClassLabel`` features, never guessed. Every problem is a
:class:`~tagtune.errors.TagtuneError` naming ``file:line`` or ``record #n`` (0-based).

``datasets`` is imported only when a hub data set or a ``datasets.Dataset`` is read, so importing
this module stays fast.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tagtune.config import DataConfig
from tagtune.corpus import Corpus, Example
from tagtune.errors import ConfigError, DataFormatError, LabelSchemeError, TagtuneError
from tagtune.progress import progress_bar
from tagtune.readers_columns import check_file, read_conll, read_conllu
from tagtune.readers_records import (
    NamesLookup,
    RecordConverter,
    check_names,
    file_names_lookup,
    load_label_names,
    read_csv,
    read_json,
    read_jsonl,
)
from tagtune.readers_spans import SPAN_FORMATS, is_brat, json_span_format, read_spans, span_config
from tagtune.spans import SpanConfig, SpanIssues

__all__ = ["FORMATS", "detect_format", "read_corpus", "read_file", "read_hf_dataset", "require_tags"]

logger = logging.getLogger(__name__)

FORMATS = ("conll", "conllu", "json", "jsonl", "csv", *SPAN_FORMATS)
_EXTENSIONS = {
    ".txt": "conll", ".conll": "conll", ".iob": "conll", ".iob2": "conll", ".tsv": "conll", ".bio": "conll",
    ".conllu": "conllu", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".ann": "brat",
}
_SNIFF_BYTES = 1 << 16
_CONLLU_ID = re.compile(r"[0-9]+(?:[-.][0-9]+)?")
_CSV_NAME = re.compile(r"[A-Za-z_][\w.-]*")
_SPLIT_LIMITS = {
    "train": "max_train_samples", "validation": "max_eval_samples", "test": "max_predict_samples",
}
_SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "dev", "val"), "test": ("test",)}
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_HUB_PROBE_TIMEOUT_S = 3.0


def detect_format(path: Path) -> str:
    """The format of a data file, from its extension or else its first lines.

    ``.txt .conll .iob .tsv .bio`` are CoNLL column files, ``.conllu`` CoNLL-U, ``.jsonl`` JSON lines,
    ``.csv`` CSV; ``.json`` is JSON or JSON lines depending on the content (the upstream
    ``train.json`` holds one object per line). JSON and JSON lines whose first record holds a text with
    spans are ``spans``, Label Studio tasks ``labelstudio``; a ``.ann`` file, a ``.txt`` beside a
    ``.ann`` or a directory of ``.ann`` files is ``brat``.

    Args:
        path: The data file (or brat directory).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DataFormatError: The file is missing, a directory, empty, binary or not UTF-8 text.
    """
    path = Path(path)
    if is_brat(path):
        return "brat"  # before check_file: a folder, or an empty .ann (a document without entities)
    check_file(path)
    ext = path.suffix.lower()
    if ext in _EXTENSIONS and _EXTENSIONS[ext] != "jsonl":
        return _EXTENSIONS[ext]
    try:
        with path.open("rb") as handle:
            first_line = handle.readline()  # the whole first line: a JSON lines record can be long
            head = first_line + handle.read(_SNIFF_BYTES)
            truncated = bool(handle.read(1))
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the file ({err.strerror or err})") from err
    if b"\0" in head:
        raise DataFormatError(
            f"{path}: looks like a binary file (NUL bytes); expected CoNLL, CoNLL-U, JSON or CSV text"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if not truncated or err.start < len(head) - 4:  # not merely a character cut by the sniff limit
            line = head.count(b"\n", 0, err.start) + 1
            raise DataFormatError(
                f"{path}:{line}: invalid UTF-8 byte 0x{head[err.start]:02x} at byte {err.start} of the file; "
                "expected UTF-8 text: re-save the file as UTF-8"
            ) from None
        text = head[: err.start].decode("utf-8")
    text = text.removeprefix("\ufeff")
    if ext in _EXTENSIONS:
        fmt = _EXTENSIONS[ext]
    else:
        fmt = _json_flavour(text) if ext == ".json" else _sniff(path, text)
    return json_span_format(text, fmt) if fmt in ("json", "jsonl") else fmt


def _json_flavour(text: str) -> str:
    """``jsonl`` when the first non-blank line is a whole JSON object by itself, else ``json``."""
    first = next((line for line in text.splitlines() if line.strip()), "").strip()
    if not first.startswith("{"):
        return "json"
    try:
        obj = json.loads(first)
    except (ValueError, RecursionError):
        return "json"  # a pretty-printed object spans lines
    return "json" if isinstance(obj, dict) and isinstance(obj.get("data"), list) else "jsonl"


def _sniff(path: Path, text: str) -> str:
    """Guess the format of a file whose extension says nothing, from its first lines."""
    lines = [line for line in text.splitlines()[:200] if line.strip()]
    if not lines:
        raise DataFormatError(
            f"{path}: holds only blank lines; expected sentences (CoNLL, CoNLL-U, JSON or CSV)"
        )
    first = lines[0].strip()
    # Brackets alone do not make JSON: "[" and "{" are also words of CoNLL files.
    if first in ("[", "{") or first.startswith(("[{", "[ {", '{"')):
        return _json_flavour(text)
    words = [line for line in lines if not line.startswith("#")]
    if words and all(len(w.split("\t")) >= 10 and _CONLLU_ID.fullmatch(w.split("\t")[0]) for w in words[:50]):
        return "conllu"
    if "\t" not in first:
        rows = list(csv.reader(lines[:5]))
        header = rows[0] if rows else []
        if len(header) >= 2 and all(_CSV_NAME.fullmatch(name.strip()) for name in header):
            return "csv"
    return "conll"


def _resolve_format(path: Path, fmt: str | None) -> str:
    if fmt in (None, "auto"):
        return detect_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of auto, {', '.join(FORMATS)}")
    if fmt != "brat":  # brat paths are folders or pairs of files: read_brat checks them
        check_file(path)
    return fmt


def read_file(
    path: Path, cfg: DataConfig, split: str = "train", format: str | None = None, spans: SpanConfig | None = None
) -> tuple[list[Example], list[str] | None]:
    """Read one data file; recoverable problems of span data are logged as warnings.

    Args:
        path: The file.
        cfg: Column, task and label-name options.
        split: The split the file is read for (``train``, ``validation``, ``test``), for messages.
        format: The format; ``None`` uses ``cfg.format``, and ``auto`` detects it.
        spans: How span data is read (overlaps, Label Studio annotator); ``None``: the defaults.

    Returns:
        The examples, and the label names when the file holds integer ids (else ``None``).

    Raises:
        DataFormatError: The file cannot be read as the format, or holds no sentences.
        LabelSchemeError: Tags are unnamed ids, out of range, mixed with names, or not tags at all.
        ConfigError: An option does not fit the file.
    """
    examples, names, _, warnings = _read_file(Path(path), cfg, split, format or cfg.format, None, spans)
    for warning in warnings:
        logger.warning(warning)
    return examples, names


def _read_file(
    path: Path, cfg: DataConfig, split: str, fmt: str | None, limit: int | None, spans: SpanConfig | None = None
) -> tuple[list[Example], list[str] | None, str, list[str]]:
    """:func:`read_file` that stops after ``limit`` examples and also returns the format read and the
    warnings (counted recoverable problems)."""
    fmt = _resolve_format(path, fmt)
    conv: RecordConverter | None = None
    issues = SpanIssues()
    if fmt in SPAN_FORMATS:
        stream: Iterator[Example] = read_spans(path, fmt, cfg, span_config(cfg, spans), issues)
    elif fmt == "conll":
        stream: Iterator[Example] = read_conll(path, cfg)
    elif fmt == "conllu":
        stream = read_conllu(path, cfg)
    else:
        conv = RecordConverter(cfg, file_names_lookup(path, cfg), cells_are_text=fmt == "csv")
        stream = {"json": read_json, "jsonl": read_jsonl, "csv": read_csv}[fmt](path, conv)
    examples: list[Example] = []
    with contextlib.closing(stream), progress_bar(desc=f"reading {path.name}", unit=" sentences", total=limit) as bar:
        for example in stream if limit is None else itertools.islice(stream, limit):  # closed early if we stop
            examples.append(example)
            bar.update()
    if not examples and limit != 0:
        raise DataFormatError(
            f"{path}: no sentences in the {split} file (read as {fmt}: only blank lines, comments, "
            "-DOCSTART- or headers); expected at least one sentence; pass --format if the format was "
            "misdetected"
        )
    return examples, None if conv is None else conv.names, fmt, issues.warnings(str(path))


def read_corpus(cfg: DataConfig, spans: SpanConfig | None = None) -> Corpus:
    """Read the train/validation/test files of ``cfg``, or its hub data set.

    ``max_train_samples``, ``max_eval_samples`` and ``max_predict_samples`` keep the first examples
    of the train, validation and test splits. ``spans`` says how span data is read (``None``: the
    options of ``cfg``, else the defaults); its counted problems go to ``Corpus.warnings``.

    Raises:
        ConfigError: No data (or both a data set and files) given, or a negative sample limit.
        DataFormatError: A file or data set cannot be read.
        LabelSchemeError: Bad tags, or splits whose label names differ.
    """
    limits: dict[str, int | None] = {split: getattr(cfg, attr) for split, attr in _SPLIT_LIMITS.items()}
    for split, attr in _SPLIT_LIMITS.items():
        limit = limits[split]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"--{attr} must be a whole number >= 0, got {limit!r}")
    files = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    given = {split: Path(file) for split, file in files.items() if file is not None}
    if cfg.dataset_name and given:
        raise ConfigError(
            f"both --dataset_name {cfg.dataset_name} and --{next(iter(given))}_file were given; "
            "pass one of them"
        )
    if cfg.dataset_name:
        return _read_hub_corpus(cfg, limits)
    if not given:
        raise ConfigError("no data: pass --dataset_name or --train_file/--validation_file/--test_file")
    splits: dict[str, list[Example]] = {}
    names: dict[str, list[str] | None] = {}
    formats: list[str] = []
    warnings: list[str] = []
    for split, path in given.items():
        splits[split], names[split], fmt, found = _read_file(path, cfg, split, cfg.format, limits[split], spans)
        formats.append(fmt)
        warnings += found
    return Corpus(splits, _merge_names(names), "+".join(dict.fromkeys(formats)), warnings)


def _merge_names(names: Mapping[str, list[str] | None]) -> list[str] | None:
    """The label names shared by all splits that name ids (splits with string tags need none)."""
    named = {split: found for split, found in names.items() if found is not None}
    if not named:
        return None
    (first_split, first), *rest = named.items()
    for split, found in rest:
        if found != first:
            raise LabelSchemeError(
                f"the label names of the {split} split ({', '.join(found[:5])}, ...) differ from those of "
                f"the {first_split} split ({', '.join(first[:5])}, ...); name the ids of all splits with one "
                "labels file"
            )
    return first


def require_tags(examples: Sequence[Example], split: str, purpose: str, cfg: DataConfig) -> None:
    """Refuse a split that is used for ``purpose`` (training, scoring) but has sentences without tags.

    The readers accept words without tags (data to predict); training and scoring need a tag for every
    word, so this names the file and what it lacks before any model is loaded.

    Raises:
        DataFormatError: Some or all sentences of ``examples`` have no tags.
    """
    untagged = next((e for e in examples if e.tags is None), None)
    if untagged is None:
        return
    tagged = next((e for e in examples if e.tags is not None), None)
    if tagged is not None:
        raise DataFormatError(
            f"{untagged.origin or split}: a sentence without tags in {split} data whose other sentences have them "
            f"(e.g. {tagged.origin}); {purpose} needs a tag for every word: tag it or drop it"
        )
    file = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}.get(split)
    source = str(file) if file is not None else f"data set {cfg.dataset_name} ({split} split)"
    raise DataFormatError(
        f"{source}: the {split} data has words but no tags ({_missing_tags(file, cfg)}); {purpose} needs a tag "
        "for every word (tagtune predict tags unlabelled data)"
    )


def _missing_tags(file: Path | None, cfg: DataConfig) -> str:
    """What a file without tags lacks, in the words of its format."""
    column = cfg.label_column_name or f"{cfg.task_name}_tags"
    records = f"its records have no {column!r} column: add it, or name the tag column with --label_column_name"
    if file is None:
        return records
    fmt = cfg.format
    if fmt in (None, "auto"):
        try:
            fmt = detect_format(Path(file))
        except TagtuneError:
            return records
    if fmt == "conll":
        return "its word lines have a single column, the word: add a tag column after it"
    if fmt == "conllu":
        name = cfg.conllu_tag.upper()
        return f"its {name} column holds only '_'" + ("; pass --conllu_tag upos" if cfg.conllu_tag == "xpos" else "")
    return records


def read_hf_dataset(dataset: Any, cfg: DataConfig, split: str) -> tuple[list[Example], list[str] | None]:
    """Read one split of a ``datasets`` data set (or any iterable of record dicts).

    Integer tags are named by ``cfg.label_names_file``, else the ``ClassLabel`` feature of the tag
    column (``features[column].feature.names``).

    Args:
        dataset: A ``datasets.Dataset`` (one split), ``IterableDataset`` or iterable of dicts.
        cfg: Column, task and label-name options; ``dataset_name`` names the source in messages.
        split: The split's name, for messages.

    Returns:
        The examples, and the label names when the tags are integer ids (else ``None``).

    Raises:
        ConfigError: ``dataset`` is a ``DatasetDict`` rather than one split.
        DataFormatError: Missing columns or malformed rows.
        LabelSchemeError: Unnamed or out-of-range ids, or tags that are not tags.
    """
    source = f"{cfg.dataset_name or 'dataset'} {split}"
    if isinstance(dataset, Mapping):
        raise ConfigError(f"{source}: expected one split (a datasets.Dataset), got a mapping of splits "
                          f"({', '.join(map(str, dataset))}); pass dataset[{split!r}]")
    conv = RecordConverter(cfg, _feature_names_lookup(getattr(dataset, "features", None), source, cfg))
    rows = _rows(dataset, conv, source)
    examples = [conv.convert(row, f"{source} record #{i}", i) for i, row in enumerate(rows)]
    return examples, conv.names


def _rows(dataset: Any, conv: RecordConverter, source: str) -> Iterable[Any]:
    """Rows of ``dataset``; for a ``datasets.Dataset`` only the needed columns, read column-wise (fast)."""
    if not all(hasattr(dataset, a) for a in ("select_columns", "column_names", "with_format", "__len__")):
        return dataset
    if len(dataset) == 0:
        return []
    plain = dataset.with_format(None)  # python lists even when the caller set a torch/numpy format
    needed = conv.choose_columns(plain[0], f"{source} record #0")
    wanted = dict.fromkeys([*needed, "id", "doc", "document_id", "doc_id"])
    columns = [c for c in wanted if c in plain.column_names]
    table = plain.select_columns(columns)[:]
    return (dict(zip(columns, values)) for values in zip(*(table[c] for c in columns)))


def _feature_names_lookup(features: Any, source: str, cfg: DataConfig) -> NamesLookup:
    """Names for integer tags of a data set: ``--label_names_file``, else the ClassLabel feature."""

    def lookup(column: str) -> tuple[list[str], str]:
        if cfg.label_names_file is not None:
            names_file = Path(cfg.label_names_file)
            return load_label_names(names_file, column), f"--label_names_file {names_file}"
        feature = features.get(column) if isinstance(features, Mapping) else None
        inner = getattr(feature, "feature", None)
        if inner is None and isinstance(feature, (list, tuple)) and feature:
            inner = feature[0]  # a feature written as [ClassLabel(...)]
        names = getattr(inner, "names", None)
        if names is None:
            raise LabelSchemeError(
                f"{source}: the tags in {column!r} are integer ids and the data set does not name them (no "
                "ClassLabel feature); pass --label_names_file names.json (a JSON list)"
            )
        return check_names(list(names), f"{source} ClassLabel of {column!r}"), f"the ClassLabel of {column!r}"

    return lookup


def _read_hub_corpus(cfg: DataConfig, limits: Mapping[str, int | None]) -> Corpus:
    """Load ``cfg.dataset_name`` and read its train/validation/test splits."""
    loaded = _load_hub_dataset(cfg)
    splits: dict[str, list[Example]] = {}
    names: dict[str, list[str] | None] = {}
    for split, aliases in _SPLIT_ALIASES.items():
        key = next((alias for alias in aliases if alias in loaded), None)
        if key is None:
            continue
        data = loaded[key]
        limit = limits[split]
        if limit is not None and limit < len(data):
            data = data.select(range(limit))
        splits[split], names[split] = read_hf_dataset(data, cfg, split)
    if not splits:
        raise DataFormatError(
            f"data set {cfg.dataset_name!r} has no train/validation/test split (found: "
            f"{', '.join(map(str, loaded))}); pass --train_file/--validation_file/--test_file"
        )
    return Corpus(splits, _merge_names(names), "hub", [])


def _load_hub_dataset(cfg: DataConfig) -> Any:
    """``datasets.load_dataset`` that fails within seconds, with one line, when the hub is unreachable.

    Raises:
        DataFormatError: The data set cannot be loaded (no connection and not cached, unknown name,
            missing configuration name, ...).
    """
    import datasets  # imported here: slow, and only hub users need it

    name = str(cfg.dataset_name)
    offline = not Path(name).exists() and not datasets.config.HF_HUB_OFFLINE and not _hub_reachable()
    cache_dir = None if cfg.cache_dir is None else str(cfg.cache_dir)
    try:
        with _hub_offline(offline):
            loaded = datasets.load_dataset(name, cfg.dataset_config_name, cache_dir=cache_dir, token=cfg.token)
    except Exception as err:  # datasets raises ConnectionError, FileNotFoundError, ValueError, its own...
        reason = "the hub is unreachable and the data set is not cached" if offline else _first_line(err)
        raise DataFormatError(f"data set {name!r} could not be loaded from the hub ({reason}); pass "
                              "--train_file/--validation_file/--test_file instead") from err
    if not isinstance(loaded, Mapping):
        raise DataFormatError(
            f"data set {name!r} loaded as one split, expected train/validation/test splits; pass "
            "--train_file/--validation_file/--test_file instead"
        )
    return loaded


def _first_line(err: BaseException) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _hub_reachable(timeout: float = _HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the hub endpoint accepts a TCP connection within ``timeout`` seconds.

    Without this probe, ``load_dataset`` retries an unreachable hub for about 25 seconds. Behind a
    proxy a direct connection proves nothing, so the probe answers yes and leaves it to the library.
    """
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return True
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    try:
        port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    except ValueError:
        return True  # a malformed endpoint: let the library report it
    answers: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answers.append(True)
        except OSError:
            pass

    # A thread, because name resolution has no timeout of its own and can hang on a broken resolver.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answers)


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Put ``datasets`` and ``huggingface_hub`` in offline mode (cache only) for the block, if asked.

    Both read their ``HF_HUB_OFFLINE`` switch from the environment at import time, so setting the
    variable now would change nothing; their module-level switches are set instead, and restored.
    """
    if not offline:
        yield
        return
    import datasets
    from huggingface_hub import constants

    candidates = ((datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
                  (constants, "HF_HUB_OFFLINE"))
    switches = [(module, attr) for module, attr in candidates if hasattr(module, attr)]
    saved = [getattr(module, attr) for module, attr in switches]
    for module, attr in switches:
        setattr(module, attr, True)
    try:
        yield
    finally:
        for (module, attr), value in zip(switches, saved):
            setattr(module, attr, value)
