"""Inputs and outputs of ``tagtune predict``: documents streamed from files, predictions written as
JSON lines, CoNLL columns, spaCy-style ``{"text", "ents"}`` records, Doccano ``{"text", "label"}``
records, Label Studio pre-annotations, brat standoff files or one HTML page (:mod:`tagtune.render`).

Input kinds: raw text (``lines``: one document per line; ``text``: a whole file is one document;
``jsonl`` with a ``text`` field; span files of annotation tools: ``spans`` records, a ``labelstudio``
export, ``brat`` standoff) and pre-split words (CoNLL / CoNLL-U column files, JSON / JSON lines with
``tokens``, read by :mod:`tagtune.readers`). Everything is read lazily, one document at a time, except
a Label Studio export (one JSON list).

The span outputs (``doccano``, ``labelstudio``, ``brat``, ``spacy``) read back through
:mod:`tagtune.readers_spans`; Label Studio pre-annotations are read with ``--annotator predictions``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tagtune.config import DataConfig
from tagtune.errors import ConfigError, DataFormatError
from tagtune.predict import Prediction

InputFormat = Literal["auto", "lines", "text", "jsonl", "conll", "conllu", "json", "spans", "labelstudio", "brat"]
INPUT_FORMATS: tuple[str, ...] = ("auto", "lines", "text", "jsonl", "conll", "conllu", "json", "spans", "labelstudio",
                                  "brat")
OutputFormat = Literal["jsonl", "conll", "spacy", "doccano", "labelstudio", "brat", "html"]
OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "conll", "spacy", "doccano", "labelstudio", "brat", "html")
_WORD_FORMATS = ("conll", "conllu", "json", "tokens-jsonl")
TEXT_FORMATS: tuple[str, ...] = ("lines", "text", "text-jsonl", "spans", "labelstudio", "brat")
# Label Studio's default NER labelling config: <Labels name="label" toName="text"> over <Text name="text">.
LABEL_STUDIO_FROM, LABEL_STUDIO_TO = "label", "text"
_UNSAFE_NAME = re.compile(r"[^\w.-]+")


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
    from tagtune.readers_spans import is_brat, record_style

    if fmt not in INPUT_FORMATS:
        raise ConfigError(f"--input_format '{fmt}' is not one of {', '.join(INPUT_FORMATS)}")
    if fmt in ("spans", "labelstudio", "brat"):
        return fmt
    if fmt == "auto" and is_brat(path):
        return "brat"
    suffix = path.suffix.lower()
    if fmt in ("jsonl", "json") or (fmt == "auto" and suffix in (".jsonl", ".json", ".ndjson")):
        first = _first_record(path)
        if isinstance(first, dict) and isinstance(first.get("data"), dict) and (
                "annotations" in first or "predictions" in first or "completions" in first):
            return "labelstudio"
        if isinstance(first, dict) and record_style(first) == "gliner":
            return "spans"
        if isinstance(first, dict) and isinstance(first.get(text_field), str) and (
                "tokens" not in first or record_style(first) is not None):
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
    elif fmt in ("text-jsonl", "spans"):
        yield from _iter_text_records(path, text_field)
    elif fmt == "labelstudio":
        yield from _iter_label_studio(path, text_field)
    elif fmt == "brat":
        yield from _iter_brat(path)
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
        if isinstance(record, dict) and isinstance(record.get("tokenized_text"), list) and text_field not in record:
            # GLiNER records: the tokens joined as the reader joins them
            from tagtune.predict import word_spans

            record = {**record, text_field: word_spans([str(t) for t in record["tokenized_text"]])[0]}
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise DataFormatError(f"{path}:{where}: expected an object with a string '{text_field}' field; "
                                  "pass --text_field NAME for another field")
        identifier = record.get("id")
        yield Document(text=record[text_field], id=None if identifier is None else str(identifier))


def _iter_label_studio(path: Path, text_field: str) -> Iterator[Document]:
    """The texts of a Label Studio export or task list (``data.<text_field>``), with the task ids."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise DataFormatError(f"{path}:{error.lineno}: not valid JSON ({error.msg}); expected a Label Studio export "
                              "(a JSON list of tasks)") from None
    if not isinstance(tasks, list):
        raise DataFormatError(f"{path}: expected a JSON list of Label Studio tasks")
    for index, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get(text_field), str):
            raise DataFormatError(f"{path} record #{index}: expected a task with a string data.{text_field}; pass "
                                  "--text_field NAME for another field")
        identifier = task.get("id")
        yield Document(text=data[text_field], id=None if identifier is None else str(identifier))


def _iter_brat(path: Path) -> Iterator[Document]:
    """The texts of brat standoff documents (``.txt`` beside ``.ann``), one document per file, named by it."""
    from tagtune.readers_spans import brat_files, read_exact

    pairs = brat_files(path) or []
    root = path if path.is_dir() else path.parent
    for txt, _ in pairs:
        if not txt.is_file():
            raise DataFormatError(f"{txt}: no such file; brat data needs the text beside each .ann")
        name = txt.relative_to(root).with_suffix("") if txt.is_relative_to(root) else Path(txt.stem)
        yield Document(text=read_exact(txt), id=name.as_posix())


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
    elif fmt == "doccano":
        record = {"text": prediction.text, "label": [[e.start, e.end, e.label] for e in prediction.entities]}
    elif fmt == "jsonl":
        record = {"text": prediction.text, "entities": [e.as_dict() for e in prediction.entities]}
        if document.words is not None:
            record["tokens"], record["tags"] = list(prediction.tokens), prediction.tags
    elif fmt in ("html", "labelstudio", "brat"):
        raise ConfigError(f"--output_format {fmt} is not one record per document: use write_predictions")
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
    if fmt == "labelstudio":
        return write_label_studio(predictions, out, str((metadata or {}).get("model") or "tagtune"))
    if fmt == "brat":
        raise ConfigError("--output_format brat writes a .txt and a .ann file per document: use write_brat with a folder")
    count = 0
    for prediction, document in predictions:
        out.write(format_prediction(prediction, document, fmt))
        count += 1
    return count


def label_studio_task(prediction: Prediction, document: Document, model_version: str, text_field: str = "text") -> dict:
    """One Label Studio task with the entities as pre-annotations (``predictions``), in Label Studio's
    import structure: ``{"data": {text_field: ...}, "predictions": [{"model_version", "score", "result": [
    {"from_name": "label", "to_name": "text", "type": "labels", "value": {"start", "end", "text",
    "labels"}, "score"}]}]}``. Offsets count code points, as Label Studio 1.x does; the prediction's score is
    the mean of its entities' scores (absent when there are none); the input's id is kept as ``data.ref_id``.
    """
    result = [{"id": f"r{k}", "from_name": LABEL_STUDIO_FROM, "to_name": LABEL_STUDIO_TO, "type": "labels",
               "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.label]}, "score": round(e.score, 6)}
              for k, e in enumerate(prediction.entities)]
    annotation: dict[str, Any] = {"model_version": model_version, "result": result}
    if result:
        annotation["score"] = round(sum(e.score for e in prediction.entities) / len(result), 6)
    data: dict[str, Any] = {text_field: prediction.text}
    if document.id is not None:
        data["ref_id"] = document.id
    return {"data": data, "predictions": [annotation]}


def write_label_studio(predictions: Iterable[tuple[Prediction, Document]], out: TextIO, model_version: str) -> int:
    """Write one JSON list of Label Studio tasks (:func:`label_studio_task`), a task at a time; returns the count."""
    count = 0
    out.write("[")
    for prediction, document in predictions:
        out.write(("," if count else "") + "\n" + json.dumps(label_studio_task(prediction, document, model_version),
                                                             ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_brat(predictions: Iterable[tuple[Prediction, Document]], folder: Path) -> int:
    """Write each document as brat standoff, ``NAME.txt`` (the text, unchanged) and ``NAME.ann`` (``T1<TAB>LABEL
    start end<TAB>text``), named after the document's id (a brat input's file name) or ``doc000001``...

    Raises:
        ConfigError: ``folder`` is a file, or holds files other than ``.txt``/``.ann`` (an earlier output).
    """
    from tagtune.fileio import atomic_write_text
    from tagtune.spans import one_line

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--output {folder}: is a file; brat output is a folder of .txt and .ann files")
    if folder.is_dir():
        other = next((p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".txt", ".ann")), None)
        if other is not None:
            raise ConfigError(f"--output {folder}: holds {other.name}, which is not brat output; pass an empty or new "
                              "folder")
    used: set[str] = set()
    count = 0
    for prediction, document in predictions:
        count += 1
        name = _file_name(document.id, count, used)
        lines = [f"T{k}\t{e.label} {e.start} {e.end}\t{one_line(e.text)}" for k, e in enumerate(prediction.entities, 1)]
        atomic_write_text(folder / f"{name}.txt", prediction.text)
        atomic_write_text(folder / f"{name}.ann", "".join(line + "\n" for line in lines))
    return count


def _file_name(identifier: str | None, count: int, used: set[str]) -> str:
    """A safe relative file name for a document: its id's path parts cleaned, else ``doc`` and its number."""
    parts = [_UNSAFE_NAME.sub("_", part) for part in (identifier or "").split("/")]
    parts = [part for part in parts if part.strip("._")]
    name = "/".join(parts) or f"doc{count:06d}"
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate
