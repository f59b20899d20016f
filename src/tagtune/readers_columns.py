"""Line-based readers: CoNLL column files and CoNLL-U, streamed one line at a time.

Both formats are read line by line so that a file of any size never sits in memory whole, and every
problem is reported as ``file:line``. :func:`iter_lines` (UTF-8 decoding with line numbers, CRLF and
BOM handling) and :func:`check_file` are shared with the record readers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tagtune.config import DataConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError, DataFormatError

_BOM = "\ufeff"
DOCSTART = "-DOCSTART-"
# CoNLL-2003 column order is ``token POS chunk NER``; without --label_column the task picks the column.
_TASK_COLUMN = {"ner": -1, "pos": 1, "chunk": 2}
_CONLLU_COLUMNS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"
_CONLLU_WORD_ID = re.compile(r"[0-9]+")
_NEWDOC_ID = re.compile(r"#\s*newdoc(?:\s+id\s*=\s*(.*))?$")
_SENT_ID = re.compile(r"#\s*sent_id\s*=\s*(.*)$")


def check_file(path: Path) -> None:
    """Fail early, with the remedy, when ``path`` is not a readable non-empty regular file.

    Raises:
        DataFormatError: The path does not exist, is a directory or special file, or is empty.
    """
    try:
        if not path.exists():
            raise DataFormatError(
                f"{path}: no such file; check the path given to --train_file/--validation_file/--test_file"
            )
        if path.is_dir():
            raise DataFormatError(f"{path}: is a directory, expected a data file; pass a file inside it")
        if not path.is_file():
            raise DataFormatError(f"{path}: is not a regular file; copy the data into a file first")
        empty = path.stat().st_size == 0
    except OSError as err:
        raise DataFormatError(f"{path}: cannot access the file ({err.strerror or err})") from err
    if empty:
        raise DataFormatError(f"{path}: the file is empty; expected sentences (CoNLL, CoNLL-U, JSON or CSV)")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, line endings removed.

    The file is decoded line by line so that an encoding error names its line and byte. ``\\n``,
    ``\\r\\n`` and lone ``\\r`` all end a line; a UTF-8 byte order mark at the start is dropped.

    Raises:
        DataFormatError: The file cannot be opened or is not valid UTF-8.
    """
    lineno = 0
    offset = 0  # byte offset of ``raw`` in the file, for the error message
    try:
        with path.open("rb") as handle:
            for raw in handle:
                body = raw[:-1] if raw.endswith(b"\n") else raw
                body = body[:-1] if body.endswith(b"\r") else body
                start = offset
                for part in body.split(b"\r"):  # a lone CR (old Mac files) is a line break too
                    lineno += 1
                    try:
                        text = part.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise DataFormatError(
                            f"{path}:{lineno}: invalid UTF-8 byte 0x{part[err.start]:02x} at byte "
                            f"{err.start + 1} of the line (byte {start + err.start} of the file); "
                            "expected UTF-8 text: re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                        ) from None
                    if lineno == 1 and text.startswith(_BOM):
                        text = text[1:]
                    yield lineno, text
                    start += len(part) + 1
                offset += len(raw)
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the file ({err.strerror or err})") from err


def split_columns(text: str) -> list[str]:
    """Split a CoNLL line into columns.

    Tabs win when a line has any, so tab-separated files may hold words with spaces; runs of
    separators count once so that columns aligned with several spaces or tabs still read.

    >>> split_columns("EU  NNP B-NP\\tB-ORG ")
    ['EU  NNP B-NP', 'B-ORG']
    >>> split_columns("EU NNP  B-NP B-ORG")
    ['EU', 'NNP', 'B-NP', 'B-ORG']
    """
    text = text.strip(" \t")
    if "\t" in text:
        return [field for field in (part.strip(" ") for part in text.split("\t")) if field]
    return [field for field in text.split(" ") if field]


def _conll_tag_column(path: Path, lineno: int, ncols: int, cfg: DataConfig) -> int | None:
    """The 0-based tag column for a file whose word lines have ``ncols`` columns (``None``: no tags)."""
    if cfg.label_column is not None:
        col = cfg.label_column
        if not -ncols <= col < ncols or col % ncols == 0:
            raise ConfigError(
                f"--label_column {col} is not a tag column of {path} (line {lineno} has {ncols} columns and "
                f"column 0 is the word); pass a value in 1..{ncols - 1} or -{ncols - 1}..-1"
            )
        return col % ncols
    if cfg.task_name not in _TASK_COLUMN:
        raise ConfigError(f"--task_name {cfg.task_name!r} is not one of {', '.join(_TASK_COLUMN)}")
    if ncols == 1:
        return None  # words only: unlabelled data, e.g. text to predict
    if ncols == 2:
        return 1
    return _TASK_COLUMN[cfg.task_name] % ncols


def read_conll(path: Path, cfg: DataConfig) -> Iterator[Example]:
    """Stream sentences from a CoNLL column file (one word per line, blank lines between sentences).

    ``-DOCSTART-`` lines start documents ``"0"``, ``"1"``, ...; sentences before the first one (or in
    a file without any) get ``doc=None``. The word is column 0; the tag column is ``cfg.label_column``
    or chosen by ``cfg.task_name`` (ner: last, pos: 1, chunk: 2; a 2-column file: 1).

    Raises:
        DataFormatError: Word lines with different column counts, or unreadable text.
        ConfigError: ``cfg.label_column`` does not fit the file.
    """
    ncols = first_line = 0
    tag_col: int | None = None
    doc: str | None = None
    n_docs = n_sents = start = 0
    tokens: list[str] = []
    tags: list[str] = []
    for lineno, text in iter_lines(path):
        fields = split_columns(text) if text.strip() else []
        if not fields or fields[0] == DOCSTART:
            if tokens:
                yield Example(tuple(tokens), None if tag_col is None else tuple(tags), doc, f"{path}:{start}",
                              str(n_sents))
                n_sents += 1
                tokens, tags = [], []
            if fields:
                doc, n_docs = str(n_docs), n_docs + 1
            continue
        if not ncols:
            ncols, first_line = len(fields), lineno
            tag_col = _conll_tag_column(path, lineno, ncols, cfg)
        elif len(fields) != ncols:
            raise DataFormatError(
                f"{path}:{lineno}: expected {ncols} columns as on line {first_line}, found {len(fields)} "
                f"({text.strip()[:60]!r}); every word line needs the same columns separated by spaces or tabs"
            )
        if not tokens:
            start = lineno
        tokens.append(fields[0])
        if tag_col is not None:
            tags.append(fields[tag_col])
    if tokens:
        yield Example(tuple(tokens), None if tag_col is None else tuple(tags), doc, f"{path}:{start}",
                      str(n_sents))


def read_conllu(path: Path, cfg: DataConfig) -> Iterator[Example]:
    """Stream sentences from a CoNLL-U file, tagged with UPOS (or XPOS when ``cfg.conllu_tag`` says so).

    Multi-word token ranges (``1-2``) are skipped and their syntactic words kept; empty nodes
    (``8.1``) are skipped. ``# newdoc`` starts a document (its ``id`` or a running number) and
    ``# sent_id`` names the next sentence. A sentence whose tags are all ``_`` (unspecified) has no tags.

    Raises:
        DataFormatError: A word line without 10 tab-separated columns or with a bad ID.
        ConfigError: ``cfg.conllu_tag`` is neither ``upos`` nor ``xpos``.
    """
    if cfg.conllu_tag not in ("upos", "xpos"):
        raise ConfigError(f"--conllu_tag {cfg.conllu_tag!r} is not one of upos, xpos")
    tag_index = 4 if cfg.conllu_tag == "xpos" else 3
    doc: str | None = None
    sent_id: str | None = None
    n_docs = n_sents = start = 0
    tokens: list[str] = []
    tags: list[str] = []

    def sentence() -> Example:
        # '_' is CoNLL-U's "unspecified": a sentence without a single tag is unlabelled, not tagged '_'.
        labelled = any(tag != "_" for tag in tags)
        return Example(tuple(tokens), tuple(tags) if labelled else None, doc, f"{path}:{start}",
                       sent_id or str(n_sents))

    for lineno, text in iter_lines(path):
        # A comment inside a sentence means its closing blank line is missing: end the sentence there.
        if not text.strip() or text.startswith("#"):
            if tokens:
                yield sentence()
                n_sents += 1
                tokens, tags, sent_id = [], [], None
            elif not text.strip():
                sent_id = None  # a comment-only block names no sentence
            if match := _NEWDOC_ID.match(text.strip()):
                doc, n_docs = (match.group(1) or "").strip() or str(n_docs), n_docs + 1
            elif match := _SENT_ID.match(text.strip()):
                sent_id = match.group(1).strip() or None
            continue
        fields = text.rstrip(" ").split("\t")
        while len(fields) > 10 and not fields[-1].strip():
            fields.pop()  # trailing tabs
        if len(fields) != 10:
            raise DataFormatError(
                f"{path}:{lineno}: expected 10 tab-separated CoNLL-U columns ({_CONLLU_COLUMNS}), found "
                f"{len(fields)}; separate the columns with single tabs"
            )
        word_id = fields[0].strip()
        if "-" in word_id or "." in word_id:
            continue  # multi-word token range or empty node: not a syntactic word of the sentence
        if not _CONLLU_WORD_ID.fullmatch(word_id):
            raise DataFormatError(
                f"{path}:{lineno}: CoNLL-U ID {word_id[:20]!r} is not a word index (1, 2, ...), a range "
                "(1-2) or an empty node (8.1)"
            )
        if not tokens:
            start = lineno
        tokens.append(fields[1])
        tags.append(fields[tag_index])
    if tokens:
        yield sentence()
