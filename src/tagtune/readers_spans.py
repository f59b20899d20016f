"""Readers of span-labelled data from annotation tools: text plus labelled character spans.

Formats (names as ``--format`` takes them):

- ``spans``: JSON lines, or a JSON list, of records in the spaCy/Prodigy style
  ``{"text", "spans": [{"start", "end", "label"}]}`` (also ``ents``), the Doccano style
  ``{"text", "label": [[start, end, "LABEL"]]}`` (also ``entities``, with ``start_offset``/``end_offset``
  objects), Label Studio's JSON-MIN export (``{"text", "label": [{"start", "end", "labels"}]}``), or the
  GLiNER style ``{"tokenized_text": [...], "ner": [[i, j, "label"]]}`` (inclusive token indices; the text
  is the tokens joined by spaces). A record without any span field is unlabelled text.
- ``labelstudio``: Label Studio's JSON export, tasks with ``data.text`` and
  ``annotations[].result[].value.{start, end, labels}``; one annotation per task is read
  (:attr:`SpanConfig.annotator`), never a merge.
- ``brat``: standoff files, ``doc.txt`` + ``doc.ann`` (``T1<TAB>LABEL start end<TAB>text``), given as
  either file or a directory of them; each line of the text is one example (lines crossed by a span
  stay together), its document the file. Discontinuous spans are refused.

Every record becomes a :class:`~tagtune.spans.SpanExample` through :func:`tagtune.spans.to_example`.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from tagtune.config import DataConfig
from tagtune.errors import DataFormatError
from tagtune.readers_columns import check_file
from tagtune.readers_records import describe, read_json, read_jsonl
from tagtune.spans import (
    RawSpan,
    SpanConfig,
    SpanExample,
    SpanIssues,
    check_spans,
    labels_from,
    one_line,
    pretokenizer,
    to_example,
)

SPAN_FORMATS: tuple[str, ...] = ("spans", "labelstudio", "brat")
SPAN_KEYS: tuple[str, ...] = ("spans", "entities", "label", "labels", "ents")
_DOC_FIELDS = ("doc", "document_id", "doc_id")
_SKIPPED_ANSWERS = ("reject", "ignore")
_BRAT_SPAN = re.compile(r"(\S+) ([0-9]+) ([0-9]+)\Z")


def span_config(cfg: DataConfig, spans: SpanConfig | None = None) -> SpanConfig:
    """The span options: ``spans`` when given, else those of ``cfg`` (``overlapping_spans``, ``annotator``
    when :class:`DataConfig` has them), with the types of ``--label_names_file``."""
    base = spans or SpanConfig(getattr(cfg, "overlapping_spans", "error"), getattr(cfg, "annotator", "latest"))
    if base.labels is not None or cfg.label_names_file is None:
        return base
    return SpanConfig(base.overlapping_spans, base.annotator, labels_from(cfg.label_names_file, f"{cfg.task_name}_tags"))


# --------------------------------------------------------------------------------------------------
# Detection


def json_span_format(head: str, fmt: str) -> str:
    """``spans`` or ``labelstudio`` when the first record of a JSON (``fmt="json"``) or JSON lines file
    (``"jsonl"``) whose first 64 KiB are ``head`` holds text and spans; else ``fmt``.

    >>> json_span_format('{"text": "EU rejects", "label": [[0, 2, "ORG"]]}', "jsonl")
    'spans'
    >>> json_span_format('[{"data": {"text": "EU"}, "annotations": []}]', "json")
    'labelstudio'
    >>> json_span_format('{"tokens": ["EU"], "label": ["B-ORG"]}', "jsonl")
    'jsonl'
    """
    record = _first_record(head, fmt)
    if not isinstance(record, Mapping):
        return fmt
    if isinstance(record.get("data"), Mapping) and any(k in record for k in ("annotations", "completions", "predictions")):
        return "labelstudio"
    return "spans" if record_style(record) is not None else fmt


def _first_record(head: str, fmt: str) -> object:
    text = head.lstrip()
    if fmt == "json":
        if not text.startswith("["):
            return None
        text = text[1:].lstrip()
    else:
        text = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except (ValueError, RecursionError):
        return None


def record_style(record: Mapping) -> str | None:
    """How a record holds its spans: ``gliner``, a span key (``spans``, ``label`` ...), ``text`` (text
    without spans), or ``None`` when it is not a span record (``tokens`` with per-word tags)."""
    if isinstance(record.get("tokenized_text"), list) and "ner" in record:
        return "gliner"
    if not isinstance(record.get("text"), str):
        return None
    for key in SPAN_KEYS:
        value = record.get(key)
        if isinstance(value, list) and value and _span_like(value[0]):
            return key
    tokens = record.get("tokens")
    if isinstance(tokens, list) and tokens and all(isinstance(t, str) for t in tokens):
        return None  # pre-split words: a word record
    present = [key for key in SPAN_KEYS if isinstance(record.get(key), list)]
    if present:
        return present[0]
    # Text alone is unlabelled text; beside other lists (tags?) it is no span record: say so elsewhere.
    others = [key for key, value in record.items() if isinstance(value, list) and key != "tokens"]
    return None if others else "text"


def _span_like(item: object) -> bool:
    if isinstance(item, Mapping):
        return "start" in item or "start_offset" in item
    return isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], int)


def brat_files(path: Path) -> list[tuple[Path, Path]] | None:
    """The ``(text, annotations)`` pairs of a brat path (a ``.ann``, a ``.txt`` beside one, or a directory
    holding ``.ann`` files), else ``None``."""
    if path.is_dir():
        anns = sorted(path.rglob("*.ann"))
        return [(ann.with_suffix(".txt"), ann) for ann in anns] or None
    if path.suffix == ".ann":
        return [(path.with_suffix(".txt"), path)]
    if path.suffix == ".txt" and path.with_suffix(".ann").is_file():
        return [(path, path.with_suffix(".ann"))]
    return None


def is_brat(path: Path) -> bool:
    """Whether ``path`` is brat data: a ``.ann`` file, a ``.txt`` beside a ``.ann``, a folder of ``.ann`` files."""
    try:
        return path.suffix.lower() == ".ann" or bool(brat_files(path))
    except OSError:  # unreadable: the ordinary checks say so
        return False


# --------------------------------------------------------------------------------------------------
# Reading


def read_spans(path: Path, fmt: str, cfg: DataConfig, spans: SpanConfig, issues: SpanIssues) -> Iterator[SpanExample]:
    """Stream the examples of a span file read as ``fmt`` (one of :data:`SPAN_FORMATS`).

    Raises:
        DataFormatError: Invalid JSON or UTF-8, malformed records or spans, overlaps (see
            :mod:`tagtune.spans`), a brat file without its pair, discontinuous brat spans.
        LabelSchemeError: A label that cannot be a tag type.
    """
    if fmt == "brat":
        yield from read_brat(path, cfg, spans, issues)
        return
    if fmt == "labelstudio":
        converter: _RecordSpans = _LabelStudioTasks(cfg, spans, issues)
    else:
        converter = _RecordSpans(cfg, spans, issues)
    check_file(path)
    stream = read_jsonl(path, converter) if _is_json_lines(path) else read_json(path, converter)  # type: ignore[arg-type]
    count = 0
    for example in stream:
        if example is not None:
            count += 1
            yield example
    if count == 0 and issues.counts["skipped_record"]:
        raise DataFormatError(f"{path}: every record was skipped (first: {issues.places['skipped_record'][0]}); "
                              f"{converter.nothing_read()}")


def _is_json_lines(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(1 << 16).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    record = _first_record(head, "jsonl") if head.startswith("{") else None
    return isinstance(record, Mapping) and not isinstance(record.get("data"), list)


class _RecordSpans:
    """Turns one record of a ``spans`` file into an example (the ``convert`` of the record readers)."""

    def nothing_read(self) -> str:
        return "expected records with text and spans (Prodigy: accepted answers)"

    def __init__(self, cfg: DataConfig, spans: SpanConfig, issues: SpanIssues) -> None:
        self.cfg, self.spans, self.issues = cfg, spans, issues

    def convert(self, record: object, where: str, index: int) -> SpanExample | None:
        if not isinstance(record, Mapping):
            raise DataFormatError(f"{where}: expected an object with 'text' and spans, found {describe(record)}")
        if record.get("answer") in _SKIPPED_ANSWERS:
            self.issues.count("skipped_record", f"{where}: Prodigy answer {record['answer']!r}")
            return None
        style = record_style(record)
        if style is None:
            raise DataFormatError(f"{where}: expected a 'text' string with spans ('spans', 'label', 'entities') "
                                  f"or 'tokenized_text' with 'ner', found the fields {', '.join(map(repr, record))}")
        if style == "gliner":
            text, raw = _gliner(record, where)
        else:
            text = record["text"]
            raw = [] if style == "text" else _record_spans(record[style], style, where)
        checked = check_spans(text, raw, self.spans, self.issues)
        doc = next((record[f] for f in _DOC_FIELDS if record.get(f) not in (None, "")), None)
        identifier = record.get("id")
        return to_example(text, checked, where, self.spans, self.issues, labelled=style != "text",
                          id=str(index) if identifier in (None, "") else str(identifier),
                          doc=None if doc is None else str(doc))


def _offset(value: object, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataFormatError(f"{where}: {what} is {describe(value)}, expected a character offset (an integer)")
    return value


def _record_spans(items: object, key: str, where: str) -> list[RawSpan]:
    """The spans of a record's ``key`` list: ``[start, end, label]`` lists or span objects."""
    if not isinstance(items, list):
        raise DataFormatError(f"{where}: {key!r} should be a list of spans, found {describe(items)}")
    spans = []
    for k, item in enumerate(items):
        name = f"span #{k}"
        if isinstance(item, Mapping):
            start = item.get("start", item.get("start_offset"))
            end = item.get("end", item.get("end_offset"))
            labels = item.get("labels")
            label_list = labels if isinstance(labels, list) and "label" not in item else [item.get("label")]
            text = item.get("text")
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            start, end, label_list, text = item[0], item[1], [item[2]], None
        else:
            raise DataFormatError(f"{where}: {name} in {key!r} is {describe(item)}; expected "
                                  '[start, end, "LABEL"] or {"start", "end", "label"}')
        start, end = _offset(start, f"{name} start", where), _offset(end, f"{name} end", where)
        if text is not None and not isinstance(text, str):
            raise DataFormatError(f"{where}: {name} text is {describe(text)}, expected a string")
        spans += [RawSpan(start, end, label, text, where, name) for label in label_list or [None]]
    return spans


def _gliner(record: Mapping, where: str) -> tuple[str, list[RawSpan]]:
    """GLiNER's ``tokenized_text`` joined by spaces, and its ``ner`` token spans (inclusive) as characters."""
    from tagtune.predict import word_spans

    tokens = record["tokenized_text"]
    if not all(isinstance(t, str) for t in tokens):
        raise DataFormatError(f"{where}: 'tokenized_text' should be a list of strings")
    text, offsets = word_spans(tokens)
    items = record["ner"]
    if not isinstance(items, list):
        raise DataFormatError(f"{where}: 'ner' should be a list of [first, last, label], found {describe(items)}")
    spans = []
    for k, item in enumerate(items):
        name = f"span #{k}"
        if not (isinstance(item, (list, tuple)) and len(item) == 3):
            raise DataFormatError(f"{where}: {name} in 'ner' is {describe(item)}; expected [first, last, \"label\"] "
                                  "(token indices, last included)")
        first, last = _offset(item[0], f"{name} first token", where), _offset(item[1], f"{name} last token", where)
        if not 0 <= first < len(tokens) or not 0 <= last < len(tokens):
            raise DataFormatError(f"{where}: {name} tokens {first}..{last} lie outside the {len(tokens)} tokens of "
                                  "'tokenized_text' (indices from 0, last included); fix the indices")
        if first > last:
            raise DataFormatError(f"{where}: {name} starts at token {first} after its last token {last}; fix the "
                                  "indices")
        spans.append(RawSpan(offsets[first][0], offsets[last][1], item[2], None, where, name))
    return text, spans


class _LabelStudioTasks(_RecordSpans):
    """Turns one Label Studio task into an example: ``data.text`` and one chosen annotation's spans."""

    def __init__(self, cfg: DataConfig, spans: SpanConfig, issues: SpanIssues) -> None:
        super().__init__(cfg, spans, issues)
        self.text_field = cfg.text_column_name or "text"
        self.annotators: set[str] = set()

    def convert(self, record: object, where: str, index: int) -> SpanExample | None:
        if not isinstance(record, Mapping) or not isinstance(record.get("data"), Mapping):
            raise DataFormatError(f"{where}: expected a Label Studio task with 'data' and 'annotations', found "
                                  f"{describe(record)}")
        text = record["data"].get(self.text_field)
        if not isinstance(text, str):
            raise DataFormatError(f"{where}: data.{self.text_field} is {describe(text)}, expected the task's text; "
                                  f"data has {', '.join(map(repr, record['data'])) or 'no fields'}: pass "
                                  "--text_column_name")
        annotation = self._choose(record, where)
        if annotation is None:
            return None
        result = annotation.get("result")
        if not isinstance(result, list):
            raise DataFormatError(f"{where}: the annotation's 'result' is {describe(result)}, expected a list")
        raw: list[RawSpan] = []
        for k, item in enumerate(result):
            if not isinstance(item, Mapping) or item.get("type") != "labels":
                continue  # choices, relations, text areas: not spans
            value = item.get("value")
            if not isinstance(value, Mapping):
                raise DataFormatError(f"{where}: result #{k} has no 'value' object")
            labels = value.get("labels")
            if not isinstance(labels, list):
                raise DataFormatError(f"{where}: result #{k} value.labels is {describe(labels)}, expected a list")
            name = f"result #{k}"
            start = _offset(value.get("start"), f"{name} value.start", where)
            end = _offset(value.get("end"), f"{name} value.end", where)
            start, end = self._code_points(text, start, end, value.get("text"), f"{where}: {name}")
            raw += [RawSpan(start, end, label, value.get("text"), where, name) for label in labels or [None]]
        checked = check_spans(text, raw, self.spans, self.issues)
        identifier = record.get("id")
        return to_example(text, checked, where, self.spans, self.issues,
                          id=str(index) if identifier in (None, "") else str(identifier))

    def _choose(self, task: Mapping, where: str) -> Mapping | None:
        """The annotation to read (see :attr:`SpanConfig.annotator`); ``None``: skip the task (counted)."""
        wanted = self.spans.annotator
        if wanted == "predictions":
            found = [p for p in task.get("predictions") or [] if isinstance(p, Mapping)]
            if not found:
                self.issues.count("skipped_record", f"{where}: no predictions")
            return found[-1] if found else None
        done = [a for a in task.get("annotations", task.get("completions")) or []
                if isinstance(a, Mapping) and not a.get("was_cancelled")]
        self.annotators.update(filter(None, (_annotator(a) for a in done)))
        if wanted not in ("latest", "first"):
            done = [a for a in done if wanted in _annotator_names(a)]
        if not done:
            self.issues.count("skipped_record", f"{where}: no completed annotation"
                              + ("" if wanted in ("latest", "first") else f" by {wanted!r}"))
            return None
        order = sorted(range(len(done)), key=lambda i: (str(done[i].get("updated_at") or done[i].get("created_at") or ""), i))
        if len(done) > 1:
            self.issues.count("several_annotations", f"{where}: {len(done)} annotations, read the {wanted if wanted == 'first' else 'latest'}")
        return done[order[0] if wanted == "first" else order[-1]]

    def nothing_read(self) -> str:
        wanted = self.spans.annotator
        if wanted == "predictions":
            return "no task has predictions; read annotations with --annotator latest"
        if wanted in ("latest", "first"):
            return ("no task has a completed annotation; annotate some, or read pre-annotations with "
                    "--annotator predictions")
        seen = ", ".join(sorted(self.annotators)) or "none"
        return f"no task has an annotation by --annotator {wanted!r} (annotators found: {seen})"

    def _code_points(self, text: str, start: int, end: int, expected: object, where: str) -> tuple[int, int]:
        """Offsets in code points: older Label Studio versions count UTF-16 units (an emoji is two)."""
        if not isinstance(expected, str) or text[start:end] == expected or text.isascii():
            return start, end
        units = [0]
        for ch in text:
            units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
        a, b = bisect.bisect_left(units, start), bisect.bisect_left(units, end)
        if units[a:a + 1] == [start] and units[b:b + 1] == [end] and text[a:b] == expected:
            self.issues.count("utf16_offsets", f"{where} [{start}, {end}) -> [{a}, {b}) {expected!r}")
            return a, b
        return start, end


def _annotator(annotation: Mapping) -> str | None:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("id")
    return None if who is None else str(who)


def _annotator_names(annotation: Mapping) -> set[str]:
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        return {str(v) for k, v in who.items() if k in ("id", "email", "username") and v is not None}
    return set() if who is None else {str(who)}


# --------------------------------------------------------------------------------------------------
# brat


def read_brat(path: Path, cfg: DataConfig, spans: SpanConfig, issues: SpanIssues) -> Iterator[SpanExample]:
    """Stream the examples of brat standoff files: one per line of each text (lines a span crosses stay
    together), ``doc`` the file's name, ``text_start`` the line's offset in the file.

    Raises:
        DataFormatError: A missing ``.txt``/``.ann``, a malformed or discontinuous ``T`` line, bad offsets.
    """
    pairs = brat_files(path)
    if pairs is None:
        raise DataFormatError(f"{path}: not brat standoff data; expected a .ann file, a .txt beside its .ann, or "
                              "a directory of them")
    root = path if path.is_dir() else path.parent
    for txt, ann in pairs:
        for file in (txt, ann):
            if not file.is_file():
                raise DataFormatError(f"{file}: no such file; brat data needs both {txt.name} and {ann.name}")
        text = read_exact(txt)
        types = _brat_types(ann.parent)
        file_cfg = spans if types is None or spans.labels is not None else SpanConfig(spans.overlapping_spans, spans.annotator, types)
        checked = check_spans(text, [_one_line(span, text) for span in _brat_spans(ann)], file_cfg, issues)
        doc = str(txt.relative_to(root).with_suffix("")) if txt.is_relative_to(root) else txt.stem
        yield from _brat_lines(text, checked, txt, doc, file_cfg, issues)


def read_exact(path: Path) -> str:
    """A file's text with its line breaks untouched: brat offsets count every character."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(f"{path}:{line}: invalid UTF-8 byte 0x{data[err.start]:02x} at byte {err.start} of the "
                              "file; expected UTF-8 text: re-save the file as UTF-8") from None


def _brat_spans(ann: Path) -> Iterator[RawSpan]:
    """The text-bound (``T``) annotations of a ``.ann`` file; relations, events, attributes, notes skipped."""
    for lineno, line in enumerate(read_exact(ann).splitlines(), start=1):
        if not line.startswith("T"):
            continue
        parts = line.split("\t")
        where = f"{ann}:{lineno}"
        if len(parts) < 2:
            raise DataFormatError(f"{where}: expected 'T1<TAB>LABEL start end<TAB>text', found {line[:60]!r}")
        if ";" in parts[1]:
            raise DataFormatError(f"{where}: {parts[0]} is a discontinuous span ({parts[1]}); one span must be one "
                                  "run of words: split it into separate annotations or remove it")
        match = _BRAT_SPAN.match(parts[1])
        if match is None:
            raise DataFormatError(f"{where}: expected 'LABEL start end' after {parts[0]}, found {parts[1][:60]!r}")
        label, start, end = match.group(1), int(match.group(2)), int(match.group(3))
        yield RawSpan(start, end, label, parts[2] if len(parts) > 2 else None, where, parts[0])


def _one_line(span: RawSpan, text: str) -> RawSpan:
    """The span with the text at its offsets when its .ann text is that text on one line (a .ann line
    cannot hold the line breaks of a span that crosses lines)."""
    covered = text[span.start:span.end] if 0 <= span.start <= span.end <= len(text) else None
    if covered is None or span.text is None or span.text == covered:
        return span
    return dataclasses.replace(span, text=covered) if one_line(covered) == span.text else span


def _brat_types(folder: Path) -> frozenset[str] | None:
    """Entity types of the nearest ``annotation.conf`` (its ``[entities]`` section), as brat finds it:
    in the document's folder or the closest folder above."""
    conf = next((d / "annotation.conf" for d in (folder, *folder.parents) if (d / "annotation.conf").is_file()), None)
    if conf is None:
        return None
    types, section = set(), ""
    for line in read_exact(conf).splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "entities" and line and not line.startswith(("#", "!", "<")):
            types.add(line.split()[0])
    return frozenset(types) or None


def _brat_lines(text: str, spans: list[RawSpan], txt: Path, doc: str, cfg: SpanConfig,
                issues: SpanIssues) -> Iterator[SpanExample]:
    breaks = [i for i, ch in enumerate(text) if ch == "\n"]
    crossed = set()
    for span in spans:
        crossed.update(breaks[bisect.bisect_left(breaks, span.start):bisect.bisect_left(breaks, span.end)])
    starts = [s.start for s in spans]
    pretokenize = pretokenizer()
    begin, line = 0, 1
    for end in [*(b for b in breaks if b not in crossed), len(text)]:
        segment = text[begin:end]
        inside = spans[bisect.bisect_left(starts, begin):bisect.bisect_left(starts, end)]
        words = pretokenize(segment)
        if words:
            shifted = [RawSpan(s.start - begin, s.end - begin, s.label, s.text, s.where, s.name) for s in inside]
            yield to_example(segment, shifted, f"{txt}:{line}", cfg, issues, id=f"{doc}:{line}", doc=doc,
                             text_start=begin, words=words)
        for span in inside if not words else ():
            issues.count("blank_span", f"{span.where}: {span.describe(text)}")
        line += segment.count("\n") + 1
        begin = end + 1
