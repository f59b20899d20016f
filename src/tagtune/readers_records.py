"""Record-based readers: JSON, JSON lines, CSV and ``datasets`` rows, one object per sentence.

A :class:`RecordConverter` turns records (dicts) into :class:`~tagtune.corpus.Example` objects. It
fixes the word and tag columns from the first record, checks every record against them, and turns
integer tag ids into names through a lookup (``--label_names_file``, ``labels.json`` beside the file,
or a ``ClassLabel`` feature), so tags leave the readers as names only.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import reprlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tagtune.config import DataConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError, DataFormatError, LabelSchemeError
from tagtune.readers_columns import iter_lines

# Lookup of label names for a column: returns the names and where they came from (for messages).
NamesLookup = Callable[[str], tuple[list[str], str]]

_TEXT_COLUMNS = ("tokens", "words")
_LABEL_FALLBACKS = ("tags", "labels", "tag", "label")
_DOC_FIELDS = ("doc", "document_id", "doc_id")
_META_FIELDS = ("id", *_DOC_FIELDS)
_BOM = "\ufeff"
# One item of a Python or numpy list repr as pandas writes lists into CSV: ['EU', 'x'] or ['EU' 'x'].
_PY_ITEM = re.compile(r"""\s*('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|-?[0-9]+)\s*,?""", re.S)
_BLANK_REST = re.compile(r"\s*\Z")
_LIST_REPR = re.compile(r"\[\s*['\"0-9-]")
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def describe(value: object) -> str:
    """Name a JSON-ish value's type and show it briefly, on one line, for error messages."""
    kinds = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", tuple: "a list", dict: "an object"}
    return f"{kinds.get(type(value), type(value).__name__)} {_short.repr(value)}"


def _columns(record: Mapping) -> str:
    return ", ".join(_short.repr(str(key)) for key in record) or "(none)"


def check_names(names: object, source: str) -> list[str]:
    """Check that ``names`` is a non-empty list of distinct strings.

    Raises:
        LabelSchemeError: It is not.
    """
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise LabelSchemeError(f"{source}: expected a non-empty list of label names (strings), found "
                               f"{describe(names)}")
    if len(set(names)) != len(names):
        dup = next(name for i, name in enumerate(names) if name in names[:i])
        raise LabelSchemeError(f"{source}: label name {dup!r} is listed twice; each id needs its own name")
    return names


def load_label_names(path: Path, column: str) -> list[str]:
    """Names for ``column`` from a JSON file holding a list, or ``{column: [names]}`` like ``labels.json``.

    Raises:
        ConfigError: The file does not exist.
        DataFormatError: It is not UTF-8 JSON.
        LabelSchemeError: It has no usable names for ``column``.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"--label_names_file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(
            f"{path}: cannot read the label names ({err}); expected a UTF-8 JSON file"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno}); expected a list of "
            f'label names or {{"{column}": [...]}}'
        ) from None
    except (ValueError, RecursionError) as err:
        raise DataFormatError(f"{path}: invalid JSON ({err}); expected a list of label names") from None
    if isinstance(data, dict):
        if column not in data:
            raise LabelSchemeError(
                f"{path}: no label names for column {column!r} (keys: {_columns(data)}); add a {column!r} "
                "entry or use a file holding one list"
            )
        data = data[column]
    return check_names(data, f"{path} ({column})")


def file_names_lookup(path: Path, cfg: DataConfig) -> NamesLookup:
    """The names lookup for a data file: ``--label_names_file``, else ``labels.json`` beside the file."""

    def lookup(column: str) -> tuple[list[str], str]:
        if cfg.label_names_file is not None:
            names_file = Path(cfg.label_names_file)
            return load_label_names(names_file, column), f"--label_names_file {names_file}"
        beside = path.parent / "labels.json"
        if beside.is_file():
            return load_label_names(beside, column), str(beside)
        raise LabelSchemeError(
            f"{path}: the tags in {column!r} are integer ids and nothing names them; pass --label_names_file "
            f'names.json (a JSON list, or {{"{column}": [...]}}) or put a labels.json beside the file'
        )

    return lookup


def parse_list_cell(text: str) -> list | None:
    """Parse a bracketed list written into a CSV cell as JSON, a Python repr or a numpy repr.

    Returns ``None`` when ``text`` is not such a list.

    >>> parse_list_cell('["EU", "rejects"]'), parse_list_cell("['EU' 'rejects']"), parse_list_cell("[3 0]")
    (['EU', 'rejects'], ['EU', 'rejects'], [3, 0])
    """
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = json.loads(text)
        return value if isinstance(value, list) else None
    except (ValueError, RecursionError):
        pass
    items: list = []
    inner, pos = text[1:-1], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes in a quoted item warn; the item still parses
        while not _BLANK_REST.match(inner, pos):
            match = _PY_ITEM.match(inner, pos)
            if match is None:
                return None
            item = match.group(1)
            try:
                items.append(ast.literal_eval(item) if item[0] in "'\"" else int(item))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
            pos = match.end()
    return items


def _cell_list(text: str, column: str, where: str, ids: bool) -> list:
    """A CSV cell as a list: a bracketed list, else space-separated items (digit-only tags are ids)."""
    parsed = parse_list_cell(text)
    if parsed is not None:
        return parsed
    if _LIST_REPR.match(text.strip()) and text.strip().endswith("]"):
        raise DataFormatError(f"{where}: cannot parse the list in column {column!r} ({_short.repr(text)}); "
                              'write a JSON list like ["EU", "rejects"] or space-separated items')
    items = text.split()
    if ids and items and all(item.isascii() and item.isdigit() for item in items):
        try:
            return [int(item) for item in items]
        except ValueError:  # more digits than int() accepts
            raise LabelSchemeError(f"{where}: a tag id in {column!r} has thousands of digits; expected tag "
                                   "names or small integer ids") from None
    return items


def _is_tag_name(column: object, cfg: DataConfig) -> bool:
    """Whether a column's name says it holds tags or metadata, so it cannot be the words."""
    name = str(column)
    return (name in _META_FIELDS or name in _LABEL_FALLBACKS or name in (cfg.task_name, cfg.label_column_name)
            or name.endswith(("_tags", "_labels")))


class RecordConverter:
    """Turns record dicts into Examples, with columns fixed by the first record.

    Args:
        cfg: Column choices (``text_column_name``, ``label_column_name``, ``task_name``).
        names_for: Finds the names of integer tag ids for a column (called once, on the first id).
        cells_are_text: Values are CSV cell strings holding lists or space-separated items.

    Attributes:
        text_column: The column read for words, once chosen.
        label_column: The column read for tags, once chosen; ``None`` for unlabelled data.
        names: The label names used to turn integer tag ids into names; ``None`` while the tags seen
            are strings (or there are none).
    """

    def __init__(self, cfg: DataConfig, names_for: NamesLookup, cells_are_text: bool = False) -> None:
        self.cfg = cfg
        self.names_for = names_for
        self.cells_are_text = cells_are_text
        self.text_column: str | None = None
        self.label_column: str | None = None
        self.names: list[str] | None = None
        self._names_source = ""
        self._chosen = False
        self._tag_kind: type | None = None
        self._tag_kind_where = ""
        self._label_names: tuple[str, ...] = ()  # tag columns looked for when the first record had none
        self._first_where = ""

    def choose_columns(self, record: Mapping, where: str) -> list[str]:
        """Pick the word and tag columns from ``record`` (once); return the columns a record needs.

        Raises:
            DataFormatError: A configured column is missing, or no column can hold the words, or the
                record looks labelled but has no tag column for the task.
        """
        if self._chosen:
            return [c for c in (self.text_column, self.label_column) if c is not None]
        cfg = self.cfg
        if cfg.text_column_name is not None:
            if cfg.text_column_name not in record:
                raise DataFormatError(
                    f"{where}: no text column {cfg.text_column_name!r} (--text_column_name); available "
                    f"columns: {_columns(record)}"
                )
            text = cfg.text_column_name
        else:
            text = next((c for c in _TEXT_COLUMNS if c in record), None) or next(
                (c for c in record if not _is_tag_name(c, cfg) and self._is_word_list(record[c])), None)
            if text is None:
                raise DataFormatError(
                    f"{where}: no column holds the words (expected 'tokens' or a list of strings); available "
                    f"columns: {_columns(record)}; pass --text_column_name"
                )
        label: str | None
        if cfg.label_column_name is not None:
            if cfg.label_column_name not in record:
                raise DataFormatError(
                    f"{where}: no label column {cfg.label_column_name!r} (--label_column_name); available "
                    f"columns: {_columns(record)}"
                )
            label = cfg.label_column_name
        else:
            wanted = (f"{cfg.task_name}_tags", cfg.task_name, *_LABEL_FALLBACKS)
            label = next((c for c in wanted if c in record and c != text), None)
            if label is None:
                self._label_names = tuple(c for c in wanted if c != text)
                # Lists beside the words look like tags under another name: say so rather than read the
                # data as unlabelled; records with only words (and ids) are unlabelled data.
                n_words = self._count(record[text])
                listy = [c for c in record
                         if c != text and c not in _META_FIELDS and self._is_list(record[c], n_words)]
                if listy:
                    raise DataFormatError(
                        f"{where}: no {cfg.task_name + '_tags'!r} column for --task_name {cfg.task_name}; "
                        f"available columns: {_columns(record)}; pass --label_column_name (e.g. "
                        f"{listy[0]!r}) or --task_name"
                    )
        self.text_column, self.label_column, self._chosen = text, label, True
        self._first_where = where
        return [c for c in (text, label) if c is not None]

    def _count(self, value: object) -> int:
        if self.cells_are_text and isinstance(value, str):
            parsed = parse_list_cell(value)
            return len(value.split()) if parsed is None else len(parsed)
        return len(value) if isinstance(value, (list, tuple)) else 0

    def _is_list(self, value: object, n_words: int) -> bool:
        if self.cells_are_text and isinstance(value, str):
            # A CSV cell of space-separated items is only taken for tags when it has one per word.
            return parse_list_cell(value) is not None or len(value.split()) == n_words > 1
        return isinstance(value, (list, tuple))

    def _is_word_list(self, value: object) -> bool:
        if self.cells_are_text and isinstance(value, str):
            value = parse_list_cell(value)
        return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) for v in value)

    def convert(self, record: object, where: str, index: int) -> Example:
        """Check one record and return it as an Example whose origin is ``where``.

        Raises:
            DataFormatError: Missing columns, words that are not a non-empty list of strings, or a
                tag count that differs from the word count.
            LabelSchemeError: Tags that are neither strings nor integer ids, mixed kinds, unnamed or
                out-of-range ids.
        """
        if not isinstance(record, Mapping):
            raise DataFormatError(
                f"{where}: expected an object with a 'tokens' list, found {describe(record)}"
            )
        self.choose_columns(record, where)
        tokens = self._words(record, where)
        tags = None if self.label_column is None else self._tags(record, where, len(tokens))
        if tags is None and self._label_names:
            late = next((c for c in self._label_names if c in record), None)
            if late is not None:  # read as unlabelled, its tags would be dropped without a word
                raise DataFormatError(
                    f"{where}: has tags in {late!r} but the first record ({self._first_where}) has none; give "
                    "every record its tags, or none"
                )
        record_id = record.get("id")
        doc = next((record[f] for f in _DOC_FIELDS if record.get(f) not in (None, "")), None)
        return Example(tokens, tags, None if doc is None else str(doc), where,
                       str(index) if record_id in (None, "") else str(record_id))

    def _value(self, record: Mapping, column: str, where: str, ids: bool) -> list:
        if column not in record:
            raise DataFormatError(
                f"{where}: missing column {column!r} (the first record has it); available columns: "
                f"{_columns(record)}"
            )
        value = record[column]
        if self.cells_are_text and isinstance(value, str):
            value = _cell_list(value, column, where, ids)
        if not isinstance(value, (list, tuple)):
            what = "tags" if ids else "words"
            raise DataFormatError(
                f"{where}: column {column!r} should hold a list of {what}, found {describe(value)}"
            )
        return list(value)

    def _words(self, record: Mapping, where: str) -> tuple[str, ...]:
        column = self.text_column
        assert column is not None
        words = self._value(record, column, where, ids=False)
        if not words:
            raise DataFormatError(
                f"{where}: column {column!r} is an empty list; every example needs at least one word: "
                "drop the record"
            )
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise DataFormatError(
                    f"{where}: word {i} in {column!r} is {describe(word)}, expected a string"
                )
        return tuple(words)

    def _tags(self, record: Mapping, where: str, n_words: int) -> tuple[str, ...]:
        column = self.label_column
        assert column is not None
        tags = self._value(record, column, where, ids=True)
        if len(tags) != n_words:
            raise DataFormatError(f"{where}: {n_words} words in {self.text_column!r} but {len(tags)} tags in "
                                  f"{column!r}; every word needs exactly one tag")
        for i, tag in enumerate(tags):
            if isinstance(tag, bool) or not isinstance(tag, (str, int)):
                raise LabelSchemeError(
                    f"{where}: tag {i} in {column!r} is {describe(tag)}; expected a tag name (string) or an "
                    "integer id"
                )
            kind = type(tag)
            if self._tag_kind is None:
                self._tag_kind, self._tag_kind_where = kind, where
            elif kind is not self._tag_kind:
                first = "integer ids" if self._tag_kind is int else "tag names (strings)"
                raise LabelSchemeError(
                    f"{where}: tag {i} in {column!r} is {describe(tag)} but {self._tag_kind_where} has "
                    f"{first}; use either names or integer ids in the whole file"
                )
        if self._tag_kind is not int:
            return tuple(tags)
        if self.names is None:
            self.names, self._names_source = self.names_for(column)
        names = self.names
        for tag in tags:
            if not 0 <= tag < len(names):
                raise LabelSchemeError(
                    f"{where}: tag id {tag} in {column!r} is out of range: {self._names_source} names "
                    f"{len(names)} labels (ids 0..{len(names) - 1}); fix the id or the names"
                )
        return tuple(names[tag] for tag in tags)


def read_json(path: Path, conv: RecordConverter) -> Iterator[Example]:
    """Examples from a JSON file holding a list of records or ``{"data": [records]}``.

    Raises:
        DataFormatError: Invalid UTF-8 or JSON, or another top-level shape.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the file ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(
            f"{path}:{line}: invalid UTF-8 byte 0x{data[err.start]:02x} at byte {err.start} of the file; "
            "expected UTF-8 text: re-save the file as UTF-8"
        ) from None
    try:
        obj = json.loads(text.removeprefix(_BOM))
    except json.JSONDecodeError as err:
        raise DataFormatError(
            f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno}); expected a list of "
            'objects or {"data": [...]} (or one object per line: .jsonl)'
        ) from None
    except (ValueError, RecursionError) as err:
        raise DataFormatError(
            f"{path}: invalid JSON ({_short.repr(str(err))}); expected a list of objects"
        ) from None
    records = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(records, list):
        raise DataFormatError(f"{path}: expected a JSON list of objects or {{\"data\": [...]}}, found "
                              f"{describe(obj)}; one object per line is JSON lines (.jsonl)")
    for index, record in enumerate(records):
        yield conv.convert(record, f"{path} record #{index}", index)


def read_jsonl(path: Path, conv: RecordConverter) -> Iterator[Example]:
    """Stream examples from a JSON lines file (one object per line; blank lines are skipped).

    Raises:
        DataFormatError: A line that is not valid JSON, or invalid UTF-8.
    """
    index = 0
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataFormatError(
                f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno}); expected one JSON "
                "object per line"
            ) from None
        except (ValueError, RecursionError) as err:
            raise DataFormatError(
                f"{path}:{lineno}: invalid JSON ({_short.repr(str(err))}); expected one JSON object per line"
            ) from None
        yield conv.convert(record, f"{path}:{lineno}", index)
        index += 1


def read_csv(path: Path, conv: RecordConverter) -> Iterator[Example]:
    """Stream examples from a CSV file with a header row (comma-separated, double-quote quoting).

    Word and tag cells hold a list (JSON, or the Python/numpy repr pandas writes) or space-separated
    items. An example's origin is the line where its row starts.

    Raises:
        DataFormatError: Invalid CSV, a row whose field count differs from the header's, no header.
    """
    reader = csv.reader(text + "\n" for _, text in iter_lines(path))
    header: list[str] | None = None
    header_line = last_line = index = 0
    while True:
        try:
            row = next(reader, None)
        except csv.Error as err:
            raise DataFormatError(
                f"{path}:{reader.line_num}: invalid CSV ({err}); quote fields that hold commas, quotes or "
                "line breaks"
            ) from None
        if row is None:
            break
        start, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header, header_line = [cell.strip() for cell in row], start
            dup = next((c for i, c in enumerate(header) if c in header[:i]), None)
            if dup is not None:
                raise DataFormatError(
                    f"{path}:{start}: column {dup!r} appears twice in the header; rename one"
                )
            continue
        if len(row) != len(header):
            raise DataFormatError(
                f"{path}:{start}: expected {len(header)} comma-separated fields as in the header (line "
                f"{header_line}), found {len(row)}; quote fields that hold commas"
            )
        yield conv.convert(dict(zip(header, row)), f"{path}:{start}", index)
        index += 1
