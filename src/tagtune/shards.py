"""Input files -> documents -> output shards, one per file: what ``tagtune predict --engine ray`` does
with each file, without Ray (:mod:`tagtune.ray_predict` runs it on a pool of workers).

Files are read from their bytes record by record, as ``tagtune predict`` reads them (:mod:`tagtune.predict_io`,
and :mod:`tagtune.readers` for word files), except that a bad record (not UTF-8, not JSON, no text
field, a null in a Parquet text column, longer than ``max_chars``) is reported as an error with its
file and record instead of stopping the file. A file's documents stream through one tagger in input
order, with the same chunks and document context as single-process ``tagtune predict``, so a shard
holds the same records.

A shard is written to a hidden temporary file and renamed into place after its meta file
(``_shards/<name>.json``: the input's size and time, counts, bad records) is written: a shard file is
complete or absent, and :func:`shard_complete` says whether an input file needs tagging again.

Layout of ``OUT``: ``<input path relative to the inputs' root>.parquet`` (or ``.jsonl``) per input
file; ``_shards/``; ``_run.json`` (the settings that decide the output: :func:`claim_output_dir`);
``errors.jsonl`` and ``summary.json`` (:func:`write_totals`).
"""

from __future__ import annotations

import codecs
import glob
import io
import itertools
import json
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, DataFormatError, TagtuneError
from tagtune.predict import Prediction, word_spans
from tagtune.predict_io import Document, iter_documents, resolve_input_format

SHARD_FORMATS: tuple[str, ...] = ("parquet", "jsonl")
WORD_FORMATS: tuple[str, ...] = ("conll", "conllu", "json", "tokens-jsonl")
INPUT_FORMATS: tuple[str, ...] = ("lines", "text", "text-jsonl", "spans", "parquet", *WORD_FORMATS)
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")  # the line breaks of Python's universal newlines
_WHERE = re.compile(r"(?::(\d+)| record #(\d+))$")  # a reader's origin: ``file:line`` or ``file record #i``


@dataclass(frozen=True)
class ShardConfig:
    """Files in, shards out: ``output_dir``, ``output_format`` (``parquet`` or ``jsonl``) and how inputs read."""

    output_dir: Path
    output_format: str = "parquet"
    input_format: str = "auto"
    text_field: str = "text"
    task_name: str = "ner"

    def __post_init__(self) -> None:
        if self.output_format not in SHARD_FORMATS:
            raise ConfigError(f"--output_format '{self.output_format}' is not one of {', '.join(SHARD_FORMATS)} "
                              "with --engine ray")


@dataclass(frozen=True)
class Source:
    """One input file: its format and its shard's name (the path relative to the inputs' root)."""

    path: Path
    format: str
    name: str


def list_sources(inputs: Sequence[str | Path], input_format: str = "auto", text_field: str = "text") -> list[Source]:
    """The input files of files, folders (every file below, hidden ones and ``_*`` skipped) and globs.

    Raises:
        ConfigError: An input matches no file, or is a format the Ray engine does not read.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        if not found:
            raise ConfigError(f"input '{item}' matches no file; pass files, folders or a quoted glob ('data/*.jsonl')")
        files.extend(p.resolve() for p in found)
    files = list(dict.fromkeys(files))
    root = Path(os.path.commonpath([p.parent for p in files]))
    sources = []
    for path in files:
        fmt = "parquet" if path.suffix.lower() == ".parquet" else _input_format(path, input_format, text_field)
        if fmt not in INPUT_FORMATS:
            raise ConfigError(f"{path}: --engine ray does not read {fmt} files; it reads {', '.join(INPUT_FORMATS)}")
        sources.append(Source(path, fmt, path.relative_to(root).as_posix()))
    return sources


def _input_format(path: Path, input_format: str, text_field: str) -> str:
    """:func:`resolve_input_format`, except that a file whose head is not UTF-8 is read record by record
    (JSON lines, or text lines) for its bad records to be reported, not stop the job."""
    try:
        return resolve_input_format(path, input_format, text_field)  # type: ignore[arg-type]
    except (UnicodeDecodeError, DataFormatError):
        if input_format != "auto":
            return {"jsonl": "text-jsonl", "json": "text-jsonl"}.get(input_format, input_format)
        return "text-jsonl" if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else "lines"


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


@dataclass
class Record:
    """A document read from a file (``document``), or why record ``where`` is bad (``error``)."""

    where: int
    document: Document | None = None
    error: str | None = None


def read_records(data: bytes, source: Source, text_field: str = "text", task_name: str = "ner") -> Iterator[Record]:
    """The documents of one file's bytes in input order, each bad record as an error instead of an exception.

    ``where`` is the line of a record (the first line of a sentence in column files), its row in a
    Parquet file or its position in a JSON list, counted from 1. A file that cannot be read any further
    (a malformed column file, a Parquet file without the text column) ends with one error.
    """
    fmt = source.format
    try:
        if fmt == "parquet":
            yield from _parquet_records(data, text_field)
        elif fmt == "text":  # newlines translated, as Path.read_text does
            text, error = _decode(data.removeprefix(codecs.BOM_UTF8))
            yield (Record(1, Document(text=text.replace("\r\n", "\n").replace("\r", "\n"))) if text is not None
                   else Record(1, error=error))
        elif fmt == "lines":
            for where, raw in _byte_lines(data):
                text, error = _decode(raw)
                yield Record(where, Document(text=text)) if error is None else Record(where, error=error)
        elif fmt in ("text-jsonl", "spans"):
            yield from _json_records(data, text_field)
        else:
            yield from _word_records(data, source, text_field, task_name)
    except (TagtuneError, ValueError, OSError) as error:  # the rest of the file is unreadable
        yield Record(0, error=" ".join(str(error).replace(str(source.path), source.name).split()))


def _byte_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Numbered lines as Python's universal newlines split them, a UTF-8 byte order mark dropped."""
    data = data.removeprefix(codecs.BOM_UTF8)
    start = number = 0
    for number, match in enumerate(_LINE_BREAK.finditer(data), start=1):
        yield number, data[start:match.start()]
        start = match.end()
    if start < len(data):
        yield number + 1, data[start:]


def _decode(raw: bytes) -> tuple[str, None] | tuple[None, str]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, f"invalid UTF-8 byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the record"


def _json_records(data: bytes, text_field: str) -> Iterator[Record]:
    if re.match(rb"\s*\[", data[:4096].removeprefix(codecs.BOM_UTF8)):  # one JSON list: all or nothing
        records: Iterable[tuple[int, Any]] = enumerate(json.loads(data.decode("utf-8-sig")), start=1)
    else:
        records = _json_lines(data)
    for where, record in records:
        if isinstance(record, Record):
            yield record
        else:
            document = _text_document(record, text_field)
            yield Record(where, error=document) if isinstance(document, str) else Record(where, document)


def _json_lines(data: bytes) -> Iterator[tuple[int, Any]]:
    for where, raw in _byte_lines(data):
        line, error = _decode(raw)
        if line is not None and not line.strip():
            continue
        try:
            yield where, json.loads(line) if line is not None else Record(where, error=error)
        except (ValueError, RecursionError) as error:
            yield where, Record(where, error=f"not valid JSON ({' '.join(str(error).split())[:200]})")


def _text_document(record: Any, text_field: str) -> Document | str:
    """A text record as ``tagtune predict`` reads it (GLiNER ``tokenized_text`` joined), or what is wrong."""
    if isinstance(record, dict) and isinstance(record.get("tokenized_text"), list) and text_field not in record:
        record = {**record, text_field: word_spans([str(t) for t in record["tokenized_text"]])[0]}
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        return f"expected an object with a string '{text_field}' field; pass --text_field NAME for another field"
    identifier = record.get("id")
    return Document(text=record[text_field], id=None if identifier is None else str(identifier))


def _parquet_records(data: bytes, text_field: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(io.BytesIO(data))
    names = handle.schema_arrow.names
    column = text_field if text_field in names else "tokens" if "tokens" in names else None
    if column is None:
        raise ConfigError(f"no column '{text_field}' (columns: {', '.join(names)}); pass --text_field NAME")
    columns = [column] + (["id"] if "id" in names else [])
    where = 0
    for batch in handle.iter_batches(columns=columns, batch_size=1024):
        ids = batch.column("id").to_pylist() if "id" in columns else [None] * batch.num_rows
        for value, identifier in zip(batch.column(column).to_pylist(), ids):
            where += 1
            identifier = None if identifier is None else str(identifier)
            if column == "tokens" and isinstance(value, list) and all(isinstance(w, str) for w in value):
                yield Record(where, Document(words=tuple(value), id=identifier))
            elif column != "tokens" and isinstance(value, str):
                yield Record(where, Document(text=value, id=identifier))
            else:
                yield Record(where, error=f"column '{column}' holds {type(value).__name__}, not "
                                          + ("a list of words" if column == "tokens" else "a string"))


def _word_records(data: bytes, source: Source, text_field: str, task_name: str) -> Iterator[Record]:
    """Sentences read by tagtune's own readers; a line that is not UTF-8 drops its sentence (column
    files) or record (JSON), blanked so that line numbers stay those of the file."""
    lines: list[str | None] = []
    for where, raw in _byte_lines(data):
        text, error = _decode(raw)
        if error is not None:
            yield Record(where, error=error)
        lines.append(text)
    if source.format in ("conll", "conllu"):
        _blank_sentences(lines)
    with tempfile.TemporaryDirectory(prefix="tagtune-ray-") as folder:
        path = Path(folder) / Path(source.name).name
        path.write_text("".join((line or "") + "\n" for line in lines), encoding="utf-8")
        del lines
        documents = iter_documents(path, source.format, text_field=text_field, task_name=task_name)
        for count, document in enumerate(documents, start=1):
            match = _WHERE.search(document.origin)
            where = int(match[1]) if match and match[1] else int(match[2]) + 1 if match else count
            yield Record(where, replace(document, origin=f"{source.name}:{where}"))


def _blank_sentences(lines: list[str | None]) -> None:
    """Blank every sentence (a run of non-blank lines) that holds an unreadable line (``None``)."""
    start = 0
    for index in range(len(lines) + 1):
        if index == len(lines) or (lines[index] is not None and not lines[index].strip()):  # type: ignore[union-attr]
            if any(line is None for line in lines[start:index]):
                lines[start:index] = [""] * (index - start)
            start = index + 1


def check_document(document: Document, max_chars: int) -> str | None:
    """Why a document cannot be tagged (too long, not valid Unicode), or ``None``."""
    text = document.text if document.text is not None else " ".join(document.words or ())
    if len(text) > max_chars:
        return f"the document has {len(text)} characters; the limit is --max_chars {max_chars}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return f"not valid Unicode (a lone surrogate at character {error.start})"
    return None


def paired_predictions(tagger, documents: Iterable[Document], *, words: bool,
                       progress: bool = False) -> Iterator[tuple[Prediction, Document]]:
    """Predictions with their documents, in input order; the tagger reads ``documents`` lazily, a chunk at a
    time (pre-split ``words`` with their document ids for document context, else raw ``text``)."""
    from tagtune.corpus import Example

    pending: deque[Document] = deque()

    def feed() -> Iterator[Any]:
        for document in documents:
            pending.append(document)
            yield Example(document.words, doc=document.document, origin=document.origin) if words else document.text

    stream = tagger.predict_examples(feed(), progress=progress) if words else tagger.predict(feed(), progress=progress)
    for prediction in stream:
        yield prediction, pending.popleft()


# ---------------------------------------------------------------------- shards


def output_record(prediction: Prediction, document: Document, file: str, where: int) -> dict[str, Any]:
    """One document's output: ``tagtune predict``'s JSON line (id, text, entities; tokens and one tag
    per word for word inputs) with the input ``file`` and ``record`` in front."""
    record: dict[str, Any] = {"file": file, "record": where}
    if document.id is not None:
        record["id"] = document.id
    record["text"] = prediction.text
    record["entities"] = [e.as_dict() for e in prediction.entities]
    if document.words is not None:
        record["tokens"], record["tags"] = list(prediction.tokens), prediction.tags
    return record


def shard_schema() -> Any:
    """The Arrow schema of every Parquet shard (``id``, ``tokens``, ``tags`` null where absent)."""
    import pyarrow as pa

    entity = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()), ("score", pa.float64()),
                        ("text", pa.string()), ("review", pa.bool_())])
    return pa.schema([("file", pa.string()), ("record", pa.int64()), ("id", pa.string()), ("text", pa.string()),
                      ("entities", pa.list_(entity)), ("tokens", pa.list_(pa.string())),
                      ("tags", pa.list_(pa.string()))])


class ShardWriter:
    """Records into ``path`` through a hidden temporary file beside it; :meth:`commit` writes the shard's
    ``meta`` file, then renames the data into place: a shard file is complete or absent."""

    ROWS = 1_000  # records per Parquet row group

    def __init__(self, path: Path, meta_path: Path, fmt: str):
        from tagtune.fileio import atomic_open

        for stale in (meta_path, path):  # an old complete shard must not pass for the new one
            stale.unlink(missing_ok=True)
        self.path, self.meta_path, self.format = path, meta_path, fmt
        self._context = atomic_open(path, "wb" if fmt == "parquet" else "w")
        self._handle = self._context.__enter__()
        self._rows: list[dict[str, Any]] = []
        self._parquet = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(self._handle, shard_schema())

    def add(self, record: dict[str, Any]) -> None:
        if self._parquet is None:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        self._rows.append({**record, "entities": [{"review": False, **e} for e in record["entities"]]})
        if len(self._rows) >= self.ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            table = pa.Table.from_pylist(self._rows, schema=self._parquet.schema)  # type: ignore[union-attr]
            self._parquet.write_table(table)  # type: ignore[union-attr]
            self._rows = []

    def commit(self, meta: dict[str, Any]) -> None:
        from tagtune.fileio import atomic_write_json

        if self._parquet is not None:
            self._flush()
            self._parquet.close()
        atomic_write_json(self.meta_path, meta)
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        """Remove the temporary file (the error that stopped the shard goes on)."""
        import sys

        if self._parquet is not None:
            try:
                self._parquet.close()
            except Exception:  # noqa: BLE001 - the file is removed anyway
                pass
        self._context.__exit__(*sys.exc_info())


def shard_paths(output_dir: Path, source: Source, fmt: str) -> tuple[Path, Path]:
    """The data file and meta file of ``source``'s shard."""
    return output_dir / f"{source.name}.{fmt}", output_dir / "_shards" / f"{source.name}.json"


def input_stamp(path: Path) -> dict[str, int]:
    """Size and modification time: a shard of a file changed since is not complete."""
    status = path.stat()
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def shard_complete(output_dir: Path, source: Source, fmt: str) -> bool:
    """Whether ``source`` has a complete shard (data file and meta, for the input as it is now)."""
    data, meta = shard_paths(output_dir, source, fmt)
    if not (data.is_file() and meta.is_file()):
        return False
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("input") == input_stamp(source.path)
    except (OSError, ValueError):
        return False


def tag_shard(tagger, data: bytes, source: Source, shards: ShardConfig, max_chars: int,
              report: Callable[[int, int], None] = lambda documents, words: None) -> dict[str, Any]:
    """Tag one input file's ``data`` into its shard; returns the shard's meta (counts and bad records).

    ``report(documents, words)`` hears of progress about once a second.
    """
    errors: list[dict[str, Any]] = []
    wheres: deque[int] = deque()

    def documents() -> Iterator[Document]:
        for record in read_records(data, source, shards.text_field, shards.task_name):
            reason = record.error or check_document(record.document, max_chars)  # type: ignore[arg-type]
            if reason is not None:
                errors.append({"file": source.name, "record": record.where, "reason": reason})
                continue
            wheres.append(record.where)
            yield record.document  # type: ignore[misc]

    started = last = time.monotonic()
    count = words = done_count = done_words = 0
    path, meta_path = shard_paths(shards.output_dir, source, shards.output_format)
    writer = ShardWriter(path, meta_path, shards.output_format)
    try:
        stream = documents()
        first = next(stream, None)  # a Parquet file holds texts or word lists: the first document says which
        pairs = () if first is None else paired_predictions(tagger, itertools.chain([first], stream),
                                                            words=first.words is not None)
        for prediction, document in pairs:
            writer.add(output_record(prediction, document, source.name, wheres.popleft()))
            count, words = count + 1, words + len(prediction.words)
            if time.monotonic() - last >= 1.0:
                report(count - done_count, words - done_words)
                done_count, done_words, last = count, words, time.monotonic()
        meta = {"file": source.name, "input": input_stamp(source.path), "documents": count, "words": words,
                "errors": errors, "seconds": round(time.monotonic() - started, 3)}
        writer.commit(meta)
    except BaseException:
        writer.abort()
        raise
    report(count - done_count, words - done_words)
    return meta


def claim_output_dir(output_dir: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings in ``output_dir`` (refusing a folder of another run's shards) and remove
    the temporary files a killed run left behind."""
    from tagtune.fileio import atomic_write_json

    path = output_dir / "_run.json"
    if path.is_file():
        earlier = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(earlier) | set(settings) if earlier.get(k) != settings.get(k))
        if changed:
            raise ConfigError(f"--output_dir {output_dir} holds shards made with other settings ({', '.join(changed)}); "
                              "pass a new --output_dir, or delete this one to start over")
    elif output_dir.is_dir() and any(output_dir.iterdir()):
        raise ConfigError(f"--output_dir {output_dir} is not empty and holds no tagtune run; pass a new or empty folder")
    atomic_write_json(path, settings)
    for stale in output_dir.rglob(".*.tmp"):  # atomic_open's temporary files: never complete
        stale.unlink(missing_ok=True)


def write_totals(shards: ShardConfig, sources: list[Source], run: dict[str, Any]) -> dict[str, int]:
    """``errors.jsonl`` (every bad record of every complete shard: ``file``, ``record``, ``reason``) and
    ``summary.json`` (totals over the complete shards, and ``run``: the last run's figures); returns the totals."""
    from tagtune.fileio import atomic_open, atomic_write_json

    totals = {"shards": 0, "documents": 0, "words": 0, "errors": 0}
    with atomic_open(shards.output_dir / "errors.jsonl") as out:
        for source in sources:
            if not shard_complete(shards.output_dir, source, shards.output_format):
                continue
            meta = json.loads(shard_paths(shards.output_dir, source, shards.output_format)[1].read_text(encoding="utf-8"))
            for error in meta["errors"]:
                out.write(json.dumps(error, ensure_ascii=False) + "\n")
            totals["shards"] += 1
            totals["documents"] += meta["documents"]
            totals["words"] += meta["words"]
            totals["errors"] += len(meta["errors"])
    atomic_write_json(shards.output_dir / "summary.json", {**totals, "inputs": len(sources), "last_run": run})
    return totals
