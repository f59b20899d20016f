"""Inputs and outputs of ``tagtune predict``: documents streamed from files, predictions written as
JSON lines, CoNLL columns, spaCy-style ``{"text", "ents"}`` records or one HTML page (:mod:`tagtune.render`).

Input kinds: raw text (``lines``: one document per line; ``text``: a whole file is one document;
``jsonl`` with a ``text`` field) and pre-split words (CoNLL / CoNLL-U column files, JSON / JSON lines
with ``tokens``, read by :mod:`tagtune.readers`). Everything is read lazily, one document at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tagtune.config import DataConfig
from tagtune.errors import ConfigError, DataFormatError
from tagtune.predict import Prediction

InputFormat = Literal["auto", "lines", "text", "jsonl", "conll", "conllu", "json"]
INPUT_FORMATS: tuple[str, ...] = ("auto", "lines", "text", "jsonl", "conll", "conllu", "json")
OutputFormat = Literal["jsonl", "conll", "spacy", "html"]
OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "conll", "spacy", "html")
_WORD_FORMATS = ("conll", "conllu", "json", "tokens-jsonl")


@dataclass(frozen=True)
class Document:
    """One input document: raw ``text``, or pre-split ``words`` (with gold ``tags`` when the file has them)."""

    text: str | None = None
    words: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    id: str | None = None
    document: str | None = None  # the document a sentence of a word file belongs to (document context)
    origin: str = ""  # where a sentence of a word file starts (``file:line``), for warnings


def resolve_input_format(path: Path, fmt: InputFormat, text_field: str = "text") -> str:
    """The concrete format of ``path``: ``lines``, ``text``, ``text-jsonl`` (raw text records), or a word
    format (``conll``, ``conllu``, ``json``, ``tokens-jsonl``).

    ``auto``: ``.jsonl``/``.json`` are raw text when their first record has ``text_field`` and no
    ``tokens``; ``.conll .conllu .iob .bio .tsv`` are column files; ``.txt`` is CoNLL when its first
    lines look like ``word ... TAG`` columns or ``-DOCSTART-``, else one document per line.
    """
    if fmt not in INPUT_FORMATS:
        raise ConfigError(f"--input_format '{fmt}' is not one of {', '.join(INPUT_FORMATS)}")
    suffix = path.suffix.lower()
    if fmt in ("jsonl", "json") or (fmt == "auto" and suffix in (".jsonl", ".json", ".ndjson")):
        first = _first_record(path)
        if isinstance(first, dict) and isinstance(first.get(text_field), str) and "tokens" not in first:
            return "text-jsonl"
        if fmt == "jsonl" or (fmt == "auto" and suffix != ".json"):
            return "tokens-jsonl"
        return "json"
    if fmt != "auto":
        return fmt
    if suffix in (".conll", ".iob", ".iob2", ".bio", ".tsv"):
        return "conll"
    if suffix == ".conllu":
        return "conllu"
    return "conll" if _looks_like_columns(path) else "lines"


def _first_record(path: Path) -> Any:
    with open(path, encoding="utf-8-sig") as handle:
        head = handle.read(1 << 16).lstrip()
    if head.startswith("["):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
        return data[0] if isinstance(data, list) and data else None
    line = head.splitlines()[0] if head else ""
    try:
        return json.loads(line) if line else None
    except json.JSONDecodeError:
        return None


def _looks_like_columns(path: Path) -> bool:
    from tagtune.labels import split_tag

    lines = []
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                lines.append(line.split())
            if len(lines) >= 20:
                break
    if not lines:
        return False
    if lines[0][0] == "-DOCSTART-":
        return True
    tagged = [f for f in lines if 2 <= len(f) <= 10 and (f[-1] == "O" or split_tag(f[-1])[0] in "BIES" and split_tag(f[-1])[0])]
    return len(tagged) == len(lines) and len({len(f) for f in lines}) == 1


def iter_documents(path: Path, fmt: str, *, text_field: str = "text", task_name: str = "ner") -> Iterator[Document]:
    """Stream the documents of ``path`` read as ``fmt`` (a :func:`resolve_input_format` result).

    Raises:
        DataFormatError: A record is not JSON or lacks ``text_field``; a column file is malformed.
    """
    if fmt == "lines":
        with open(path, encoding="utf-8-sig", newline="") as handle:
            for line in handle:
                yield Document(text=line.rstrip("\r\n"))
    elif fmt == "text":
        yield Document(text=Path(path).read_text(encoding="utf-8-sig"))
    elif fmt == "text-jsonl":
        yield from _iter_text_records(path, text_field)
    elif fmt in _WORD_FORMATS:
        yield from _iter_word_records(path, fmt, task_name)
    else:
        raise ConfigError(f"unknown input format '{fmt}'")


def _iter_text_records(path: Path, text_field: str) -> Iterator[Document]:
    with open(path, encoding="utf-8-sig") as handle:
        head = handle.read(1)
    if head == "[":
        records = json.loads(Path(path).read_text(encoding="utf-8-sig"))
        rows: Iterator[tuple[int, Any]] = enumerate(records, start=1)
    else:
        rows = _json_lines(path)
    for where, record in rows:
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise DataFormatError(f"{path}:{where}: expected an object with a string '{text_field}' field; "
                                  "pass --text_field NAME for another field")
        identifier = record.get("id")
        yield Document(text=record[text_field], id=None if identifier is None else str(identifier))


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(f"{path}:{lineno}: not valid JSON ({error.msg}); expected one object per line") from None


def _iter_word_records(path: Path, fmt: str, task_name: str) -> Iterator[Document]:
    from tagtune.readers_columns import check_file, read_conll, read_conllu
    from tagtune.readers_records import RecordConverter, file_names_lookup, read_json, read_jsonl

    cfg = DataConfig(task_name=task_name)  # type: ignore[arg-type]
    check_file(path)
    if fmt == "conll":
        stream = read_conll(path, cfg)
    elif fmt == "conllu":
        stream = read_conllu(path, cfg)
    else:
        converter = RecordConverter(cfg, file_names_lookup(path, cfg), cells_are_text=False)
        stream = (read_json if fmt == "json" else read_jsonl)(path, converter)
    for example in stream:
        yield Document(words=example.tokens, tags=example.tags, id=example.id or None, document=example.doc,
                       origin=example.origin)


# ---------------------------------------------------------------------- outputs


def format_prediction(prediction: Prediction, document: Document, fmt: OutputFormat) -> str:
    """One document's output: a JSON line (``jsonl``, ``spacy``) or a CoNLL block ending in a blank line."""
    if fmt == "conll":
        rows = []
        for i, (word, tag) in enumerate(zip(prediction.tokens, prediction.tags)):
            cell = "".join("_" if ch.isspace() else ch for ch in word) or "_"
            gold = f" {document.tags[i]}" if document.tags is not None else ""
            rows.append(f"{cell}{gold} {tag}")
        return "\n".join(rows) + ("\n\n" if rows else "\n")
    if fmt == "spacy":
        record: dict[str, Any] = {"text": prediction.text,
                                  "ents": [{"start": e.start, "end": e.end, "label": e.label} for e in prediction.entities]}
    elif fmt == "jsonl":
        record = {"text": prediction.text, "entities": [e.as_dict() for e in prediction.entities]}
        if document.words is not None:
            record["tokens"], record["tags"] = list(prediction.tokens), prediction.tags
    elif fmt == "html":
        raise ConfigError("--output_format html is one page for all documents: use write_predictions")
    else:
        raise ConfigError(f"--output_format '{fmt}' is not one of {', '.join(OUTPUT_FORMATS)}")
    if document.id is not None:
        record = {"id": document.id, **record}
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_predictions(predictions: Iterator[tuple[Prediction, Document]], out: TextIO, fmt: OutputFormat,
                      metadata: dict[str, Any] | None = None) -> int:
    """Write every prediction as it comes; returns the number of documents.

    ``html`` writes one self-contained page; ``metadata`` (:meth:`Tagger.metadata`) gives its legend
    (the model's labels) and description.
    """
    if fmt == "html":
        from tagtune.render import write_html

        meta = metadata or {}
        triples = ((p.text, p.entities, d.id) for p, d in predictions)
        return write_html(triples, out, labels=meta.get("labels", ()), metadata=meta)
    count = 0
    for prediction, document in predictions:
        out.write(format_prediction(prediction, document, fmt))
        count += 1
    return count
