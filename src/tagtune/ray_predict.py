"""Corpus-scale prediction on Ray Data: ``tagtune predict MODEL INPUT --engine ray --output_dir OUT``.

A pool of :class:`~tagtune.predict.Tagger` actors (``Dataset.map_batches`` with an
``ActorPoolStrategy``: one model per worker, ``threads`` CPUs reserved for each, so that workers never
oversubscribe cores) tags the input files that ``ray.data.read_binary_files`` reads. A file is the unit
of work: one worker tags it into its shard (:mod:`tagtune.shards`: same records as single-process
``tagtune predict``, bad records counted, atomic shards, resume). Ray Data's own ``write_parquet`` is
not used for the shards because it names files by block and can leave partial files behind, which
would defeat resuming by input file.

:func:`tag_dataset` is the same actor pool over any ``ray.data.Dataset`` of texts or word lists (each
row one independent document), for pipelines that read and write with Ray Data themselves.

Without an address Ray starts on this machine; with ``address`` (or ``RAY_ADDRESS``) it joins a
cluster, whose nodes need tagtune installed and the model, inputs and output folder on a shared path.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError
from tagtune.predict import PredictConfig
from tagtune.predict_io import Document
from tagtune.shards import (
    ShardConfig,
    Source,
    check_document,
    claim_output_dir,
    list_sources,
    paired_predictions,
    shard_complete,
    shard_schema,
    tag_shard,
    write_totals,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "tagtune[ray]"'


@dataclass(frozen=True)
class RayConfig:
    """Where and with how many workers Ray tags.

    Attributes:
        address: A Ray cluster (``host:port``, ``ray://...``, ``auto``); ``None``: ``RAY_ADDRESS``, else a
            new Ray instance on this machine.
        num_workers: Tagger actors; ``None``: the cluster's CPUs / ``threads``.
        threads: CPUs (intra-op threads) of each worker, reserved with Ray so that workers never
            oversubscribe cores; ``None``: the cluster's CPUs / ``num_workers`` (1 if neither is given).
        device: ``cpu`` or ``cuda`` (one GPU per worker).
        backend / allow_pickle: As for :func:`tagtune.load`.
        max_chars: A longer document is a bad record, not tagged.
    """

    address: str | None = None
    num_workers: int | None = None
    threads: int | None = None
    device: str = "cpu"
    backend: str = "auto"
    allow_pickle: bool = False
    max_chars: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("num_workers", "threads", "max_chars"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be at least 1, got {value}")


@dataclass
class RunSummary:
    """What a run did: input files (``shards``, of which ``skipped`` were complete), documents and words
    tagged, bad records (``errors``, over every shard of the folder), workers, and seconds: Ray's start,
    the workers' model loads, the whole run, and ``tag_seconds`` from the moment every worker had loaded
    its model. The rates count the documents and words tagged in ``tag_seconds`` (``timed_*``): all
    workers at work, start-up apart."""

    shards: int = 0
    skipped: int = 0
    documents: int = 0
    words: int = 0
    errors: int = 0
    workers: int = 0
    threads: int = 0
    ray_start_seconds: float = 0.0
    workers_ready_seconds: float = 0.0
    seconds: float = 0.0
    tag_seconds: float = 0.0
    timed_documents: int = 0
    timed_words: int = 0

    @property
    def words_per_second(self) -> float:
        return self.timed_words / self.tag_seconds if self.tag_seconds > 0 else 0.0

    @property
    def documents_per_second(self) -> float:
        return self.timed_documents / self.tag_seconds if self.tag_seconds > 0 else 0.0


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a :class:`ConfigError` saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed; {INSTALL_HINT}") from None
    return ray


def size_workers(cpus: int, num_workers: int | None, threads: int | None,
                 files: int | None = None) -> tuple[int, int]:
    """``(workers, threads per worker)`` for a cluster of ``cpus`` CPUs and ``files`` input files (a
    worker without a file would load its model for nothing, so there are never more workers than files).

    >>> size_workers(16, None, None), size_workers(16, None, None, files=2), size_workers(16, 4, None)
    ((16, 1), (2, 8), (4, 4))
    >>> size_workers(16, None, 4), size_workers(3, 2, None)
    ((4, 4), (2, 1))

    Raises:
        ConfigError: More CPUs asked for than the cluster has (the workers would wait for ever).
    """
    workers = num_workers or max(1, cpus // (threads or 1))
    workers = min(workers, files) if files else workers
    threads = threads or max(1, cpus // workers)
    if workers * threads > cpus:
        raise ConfigError(f"--num_workers {workers} x --threads {threads} needs {workers * threads} CPUs and the Ray "
                          f"cluster has {cpus}; pass fewer workers or threads")
    return workers, threads


class TaggerWorker:
    """A Ray actor's state: one :class:`~tagtune.predict.Tagger`, loaded once, on its ``threads`` CPUs."""

    def __init__(self, model: str, config: RayConfig, predict: PredictConfig, progress: Any = None):
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the worker's CPUs are its torch threads
        from transformers.utils import logging as hf_logging

        from tagtune.predict import load

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        device = "cuda" if config.device.startswith("cuda") else config.device  # Ray picks the GPU
        self.tagger = load(model, backend=config.backend, config=predict, device=device,  # type: ignore[arg-type]
                           allow_pickle=config.allow_pickle)
        self.config = config
        self.progress = progress
        if progress is not None:
            progress.ready.remote()

    def report(self, documents: int, words: int) -> None:
        if self.progress is not None:
            self.progress.add.remote(documents, words)


class FileWorker(TaggerWorker):
    """Tags whole input files (rows of ``read_binary_files``: ``path``, ``bytes``) into their shards."""

    def __init__(self, model: str, config: RayConfig, predict: PredictConfig, shards: ShardConfig,
                 sources: dict[str, Source], progress: Any = None):
        super().__init__(model, config, predict, progress)
        self.shards, self.sources = shards, sources

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        metas = [tag_shard(self.tagger, bytes(data), self.sources[_path_key(path)], self.shards, self.config.max_chars,
                           self.report)
                 for path, data in zip(batch["path"], batch["bytes"])]
        return {"file": [m["file"] for m in metas], "documents": [m["documents"] for m in metas],
                "words": [m["words"] for m in metas], "errors": [len(m["errors"]) for m in metas]}


class BatchWorker(TaggerWorker):
    """Tags the rows of an Arrow batch: ``column`` holds a text or a list of words per row (see :func:`tag_dataset`)."""

    def __init__(self, model: str, config: RayConfig, predict: PredictConfig, column: str):
        super().__init__(model, config, predict)
        self.column = column

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa

        rows = len(table)
        entities: list[Any] = [None] * rows
        tags: list[Any] = [None] * rows
        errors: list[str | None] = [None] * rows
        kinds: dict[bool, list[tuple[int, Document]]] = {False: [], True: []}
        for index, value in enumerate(table.column(self.column).to_pylist()):
            if isinstance(value, str):
                document = Document(text=value)
            elif isinstance(value, list) and all(isinstance(word, str) for word in value):
                document = Document(words=tuple(value))
            else:
                errors[index] = f"'{self.column}' holds {type(value).__name__}, not a string or a list of words"
                continue
            errors[index] = check_document(document, self.config.max_chars)
            if errors[index] is None:
                kinds[document.words is not None].append((index, document))
        for words, items in kinds.items():
            pairs = paired_predictions(self.tagger, (d for _, d in items), words=words)
            for (index, _), (prediction, _) in zip(items, pairs):
                entities[index] = [{"review": False, **e.as_dict()} for e in prediction.entities]
                tags[index] = prediction.tags if words else None
        schema = shard_schema()
        table = table.drop_columns([c for c in ("entities", "tags", "error") if c in table.column_names])
        table = table.append_column(schema.field("entities"), pa.array(entities, schema.field("entities").type))
        table = table.append_column(schema.field("tags"), pa.array(tags, schema.field("tags").type))
        return table.append_column("error", pa.array(errors, pa.string()))


class ProgressCounter:
    """A Ray actor that counts what the workers tagged, and when each had loaded its model: ``(wall clock,
    documents and words tagged by then)``."""

    def __init__(self) -> None:
        self.documents = self.words = 0
        self.ready_at: list[tuple[float, int, int]] = []

    def add(self, documents: int, words: int) -> None:
        self.documents += documents
        self.words += words

    def ready(self) -> None:
        self.ready_at.append((time.time(), self.documents, self.words))

    def snapshot(self) -> tuple[int, int, list[tuple[float, int, int]]]:
        return self.documents, self.words, self.ready_at


def _path_key(path: str) -> str:
    """A path as ``read_binary_files`` gives it back, and as the driver listed it: absolute, normalized."""
    return os.path.normpath("/" + str(path).lstrip("/"))


def tag_dataset(dataset: Any, model: str | Path, *, column: str = "text", config: RayConfig = RayConfig(),
                predict: PredictConfig = PredictConfig(), batch_size: int = 256) -> Any:
    """Tag a ``ray.data.Dataset`` with a pool of tagger actors; returns the dataset with three more columns.

    Each row of ``column`` is one document: a text, or a list of words. Added: ``entities`` (``start``,
    ``end``, ``label``, ``score``, ``text``, ``review``; offsets into the text, or into the words joined
    by spaces), ``tags`` (one per word, for word rows) and ``error`` (why a row was not tagged: not a
    string, longer than ``config.max_chars``; else null). Lazy, as every Ray Data transform::

        ds = ray.data.read_parquet("s3://bucket/docs/")
        tag_dataset(ds, "out/minilm-conll", config=RayConfig(num_workers=8)).write_parquet("s3://bucket/tagged/")
    """
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=config.address, include_dashboard=False, logging_level=logging.WARNING)
    workers, threads = size_workers(int(ray.cluster_resources().get("CPU", 1)), config.num_workers, config.threads)
    return dataset.map_batches(
        BatchWorker, batch_size=batch_size, batch_format="pyarrow", num_cpus=threads, **_gpus(config),
        # From one worker up: a fixed pool holding every CPU would starve the stages before it (reads).
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
        fn_constructor_kwargs={"model": _absolute(model), "config": config,
                               "predict": replace(predict, threads=threads), "column": column})


def _absolute(model: str | Path) -> str:
    """A local model folder as an absolute path (anything else, such as a hub name, as it is)."""
    return str(Path(model).resolve()) if Path(model).exists() else str(model)


def _gpus(config: RayConfig) -> dict[str, int]:
    return {"num_gpus": 1} if config.device.startswith("cuda") else {}


# ---------------------------------------------------------------------- the run


def predict_files(model: str | Path, inputs: Sequence[str | Path], shards: ShardConfig,
                  config: RayConfig = RayConfig(), predict: PredictConfig = PredictConfig(), *,
                  progress: bool = True) -> RunSummary:
    """Tag every input file into its shard under ``shards.output_dir`` with a pool of Ray workers.

    Complete shards of an earlier run with the same settings are skipped. ``errors.jsonl`` (every bad
    record of every shard: ``file``, ``record``, ``reason``) and ``summary.json`` are rewritten at the end.

    Raises:
        ConfigError: Ray is not installed, no input file, ``output_dir`` holds another run's shards, or
            more CPUs asked for than the cluster has.
    """
    ray = require_ray()
    began = time.monotonic()
    model = _absolute(model)  # workers do not share the driver's working directory
    shards = replace(shards, output_dir=shards.output_dir.resolve())
    sources = list_sources(inputs, shards.input_format, shards.text_field)
    claim_output_dir(shards.output_dir, _settings(model, shards, config, predict))
    pending = [s for s in sources if not shard_complete(shards.output_dir, s, shards.output_format)]
    summary = RunSummary(shards=len(sources), skipped=len(sources) - len(pending))
    if pending:
        logger.info("%d of %d input files to tag (%d complete shards skipped)", len(pending), len(sources),
                    summary.skipped)
        with _ray_session(ray, config.address) as cpus:
            summary.ray_start_seconds = time.monotonic() - began
            summary.workers, summary.threads = size_workers(cpus, config.num_workers, config.threads, len(pending))
            _run_pipeline(ray, model, pending, shards, config, replace(predict, threads=summary.threads),
                          summary, progress)
    summary.seconds = time.monotonic() - began
    run = {k: v for k, v in asdict(summary).items() if k != "errors"}  # errors: over every shard, below
    run.update(documents_per_second=round(summary.documents_per_second, 2),
               words_per_second=round(summary.words_per_second, 1))
    summary.errors = write_totals(shards, sources, run)["errors"]
    return summary


def _run_pipeline(ray: Any, model: str, pending: list[Source], shards: ShardConfig, config: RayConfig,
                  predict: PredictConfig, summary: RunSummary, progress: bool) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the progress line below counts documents and words
    counter = ray.remote(num_cpus=0)(ProgressCounter).remote()
    dataset = ray.data.read_binary_files([str(s.path) for s in pending], include_paths=True, num_cpus=0,
                                         override_num_blocks=len(pending))
    dataset = dataset.map_batches(
        FileWorker, batch_size=1, num_cpus=summary.threads, **_gpus(config),
        # One file at a time per worker: a long file never holds up files queued behind it.
        compute=ray.data.ActorPoolStrategy(size=summary.workers, max_tasks_in_flight_per_actor=1),
        fn_constructor_kwargs={"model": model, "config": config, "predict": predict, "shards": shards,
                               "sources": {_path_key(str(s.path)): s for s in pending}, "progress": counter})
    started = time.time()
    with _ProgressLine(ray, counter, progress):
        for row in dataset.iter_rows():
            summary.documents += int(row["documents"])
            summary.words += int(row["words"])
    ended = time.time()
    # The last worker loaded: the rates count from here (workers report about once a second).
    ready, documents, words = max(ray.get(counter.snapshot.remote())[2], default=(started, 0, 0))
    summary.workers_ready_seconds = ready - started
    summary.tag_seconds = ended - ready
    summary.timed_documents, summary.timed_words = summary.documents - documents, summary.words - words


class _ProgressLine:
    """Polls the workers' counter: a bar with documents/s and words/s (from the first loaded model) on a
    terminal, a log line every 30 s elsewhere."""

    def __init__(self, ray: Any, counter: Any, enabled: bool):
        from tagtune.progress import progress_bar

        self.ray, self.counter = ray, counter
        self.bar = progress_bar(desc="tagging", unit="doc") if enabled else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.bar is not None:
            self.bar.close()

    def _poll(self) -> None:
        shown, logged = 0, time.monotonic()
        while not self._stop.wait(0.5):
            try:
                documents, words, ready_at = self.ray.get(self.counter.snapshot.remote(), timeout=5)
            except Exception:  # noqa: BLE001, S112 - a missed poll only delays the line
                continue
            seconds = max(time.time() - min((t for t, _, _ in ready_at), default=time.time()), 1e-9)
            rates = f"{documents / seconds:,.1f} docs/s, {words / seconds:,.0f} words/s"
            if self.bar is not None and not self.bar.disable:
                self.bar.update(documents - shown)
                self.bar.set_postfix_str(rates, refresh=False)
                shown = documents
            elif self.bar is not None and time.monotonic() - logged >= 30 and documents:
                logger.info("tagged %d documents, %d words: %s", documents, words, rates)
                logged = time.monotonic()


@contextmanager
def _ray_session(ray: Any, address: str | None) -> Iterator[int]:
    """Ray, joined at ``address`` (or ``RAY_ADDRESS``) or started on this machine; yields the cluster's CPUs.
    A session started here is shut down at the end (a local instance stops with it)."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield int(ray.cluster_resources().get("CPU", 0))
    finally:
        if started:
            ray.shutdown()


def _settings(model: str | Path, shards: ShardConfig, config: RayConfig, predict: PredictConfig) -> dict[str, Any]:
    """What decides a shard's content: model, backend, prediction options, formats, limits (not workers)."""
    options = {k: v for k, v in asdict(predict).items() if k != "threads"}
    return {"model": str(model), "backend": config.backend, "device": config.device,
            "max_chars": config.max_chars, "predict": options, "output_format": shards.output_format,
            "input_format": shards.input_format, "text_field": shards.text_field, "task_name": shards.task_name}
