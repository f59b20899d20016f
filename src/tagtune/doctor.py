"""The data doctor behind ``tagtune inspect``: what a data set holds and what is wrong with it.

:func:`diagnose` reads each split with the ordinary readers and reports, per split, the format,
sentences, words, documents and label distribution, then the problems: invalid IOB/BIOES sequences
(``file:line``), tags found in only some splits, sentences longer than the model's input in sub-tokens
(with a histogram), exact and near-duplicate sentences shared by train and the evaluation splits
(leakage), and suspicious lines or words (whitespace-only lines, empty words, control characters,
mis-decoded UTF-8). Span data of annotation tools (:mod:`tagtune.readers_spans`) is read leniently: spans
per label, boundaries that split words, overlaps, offset mismatches, empty or whitespace-only spans are
counted and placed instead of stopping at the first. Nothing here prints; the CLI renders a
:class:`Diagnosis`.

Near-duplicates are sentences equal once lowercased, digits turned into ``0`` and punctuation removed;
each sentence is kept as an 8-byte hash of that form, so memory stays small on large corpora.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.config import DataConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError, TagtuneError
from tagtune.labels import SPLIT_ORDER, build_label_list, detect_scheme, get_entities, validate_tags
from tagtune.progress import progress_bar
from tagtune.readers import detect_format, read_file
from tagtune.readers_columns import DOCSTART
from tagtune.readers_spans import SPAN_FORMATS, is_brat, read_spans, span_config
from tagtune.spans import ISSUE_KINDS, SpanConfig, SpanExample, SpanIssues

SEVERITIES = ("error", "warning", "info")
_SPLIT_WORDS = {"train": "train", "training": "train", "valid": "validation", "validation": "validation",
                "dev": "validation", "val": "validation", "testa": "validation", "test": "test", "testb": "test"}
_LINE_FORMATS = ("conll", "conllu")
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac")
_INVISIBLE = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060\ufeff\ufffd]")
_LONG_WORD = 50


@dataclass
class Problem:
    """One kind of problem, counted, with the first places it occurs.

    Attributes:
        kind: A stable name (``invalid_tags``, ``tag_not_in_train``, ``leakage`` ...).
        severity: ``error`` (training would be wrong), ``warning`` (probably a mistake), ``info``.
        message: One line saying what and why it matters, with the remedy where there is one.
        count: How many times it occurs.
        where: The first occurrences, ``file:line: detail``.
    """

    kind: str
    severity: str
    message: str
    count: int = 0
    where: list[str] = field(default_factory=list)


@dataclass
class SplitStats:
    """What one split holds."""

    split: str
    path: str
    format: str
    sentences: int = 0
    words: int = 0
    documents: int = 0
    longest: int = 0
    scheme: str = "none"
    tags: dict[str, int] = field(default_factory=dict)
    entities: dict[str, int] = field(default_factory=dict)
    spans: dict[str, int] = field(default_factory=dict)  # character spans per label (span data only)
    split_words: int = 0  # words split at span boundaries (span data only)


@dataclass
class Diagnosis:
    """Everything :func:`diagnose` found; :meth:`as_dict` is the ``--json`` form.

    Attributes:
        splits: Statistics per split, in train, validation, test order.
        scheme: The tagging scheme of all splits together.
        labels: The label list training would use (label names first when the data names ids).
        problems: Problems, errors first.
        lengths: Sentence lengths (sub-tokens with a tokenizer, else words): limits, counts over them
            and a histogram per split.
        duplicates: Exact and near duplicates within each split and shared between splits.
    """

    splits: dict[str, SplitStats]
    scheme: str
    labels: list[str]
    problems: list[Problem]
    lengths: dict[str, Any]
    duplicates: dict[str, Any]

    def has_problems(self, severities: Iterable[str] = ("error", "warning")) -> bool:
        wanted = set(severities)
        return any(p.severity in wanted for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------------
# Which file is which split


def split_of(path: Path) -> str | None:
    """The split a file name announces (``train``, ``validation``, ``test``) or ``None``.

    >>> split_of(Path("valid.txt")), split_of(Path("eng.testb")), split_of(Path("train-00000.jsonl")), split_of(Path("x.txt"))
    ('validation', 'test', 'train', None)
    """
    words = re.split(r"[^a-z]+", path.name.lower())
    return next((_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS), None)


def resolve_inputs(paths: Sequence[Path], train: Path | None = None, validation: Path | None = None,
                   test: Path | None = None) -> dict[str, Path]:
    """``{split: file}`` from files and directories given on the command line.

    A directory contributes its files whose names announce a split (``train.txt valid.txt test.txt``,
    ``train.json validation.json``...); a file goes to the split its name announces, else it is a split
    named after the file. ``train``/``validation``/``test`` name a split's file outright.

    Raises:
        ConfigError: Nothing given, a directory without split files, or two files for one split.
    """
    found: dict[str, Path] = {}

    def add(split: str, path: Path) -> None:
        if split in found and found[split] != path:
            raise ConfigError(f"two files for the {split} split: {found[split]} and {path}; pass one of them "
                              f"with --{split}")
        found[split] = path

    for path in map(Path, paths):
        if path.is_dir() and is_brat(path) and not any(split_of(p) for p in path.iterdir() if p.is_dir()):
            add(split_of(path) or path.resolve().name, path)  # a folder of brat documents is one split
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if split_of(p) and p.name != "labels.json"
                           and (p.is_file() and p.suffix != ".ann" or p.is_dir() and is_brat(p)))
            if not files:
                raise ConfigError(f"{path}: no train/valid(ation)/dev/test files in this directory; pass the files")
            for file in files:
                add(split_of(file), file)  # type: ignore[arg-type]
        else:
            split = split_of(path) or path.stem
            add(split if split not in found else f"{split}:{path.name}", path)
    for split, path in (("train", train), ("validation", validation), ("test", test)):
        if path is not None:
            found[split] = Path(path)
    if not found:
        raise ConfigError("no data: pass files, a directory, or --train/--validation/--test")
    order = [s for s in SPLIT_ORDER if s in found] + [s for s in found if s not in SPLIT_ORDER]
    return {split: found[split] for split in order}


# --------------------------------------------------------------------------------------------------
# Places


def word_place(example: Example, fmt: str, index: int) -> str:
    """``file:line`` of word ``index`` of a CoNLL example (one word per line), else ``origin word n``.

    >>> word_place(Example(("a", "b"), origin="train.txt:12"), "conll", 1)
    'train.txt:13'
    >>> word_place(Example(("a", "b"), origin="t.json record #3"), "json", 1)
    't.json record #3 word 2'
    """
    if fmt == "conll":
        path, _, line = example.origin.rpartition(":")
        if line.isdigit():
            return f"{path}:{int(line) + index}"
    return f"{example.origin} word {index + 1}"


def _preview(tokens: Sequence[str], limit: int = 12) -> str:
    text = " ".join(tokens[:limit])
    return text + (" ..." if len(tokens) > limit else "")


class _Collector:
    """Problems by kind, counting every occurrence and keeping the first ``keep`` places."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.problems: dict[str, Problem] = {}

    def add(self, kind: str, severity: str, message: str, where: str | None = None, count: int = 1) -> None:
        problem = self.problems.setdefault(kind, Problem(kind, severity, message))
        problem.count += count
        if where is not None and len(problem.where) < self.keep:
            problem.where.append(where)

    def sorted(self) -> list[Problem]:
        return sorted(self.problems.values(), key=lambda p: (SEVERITIES.index(p.severity), -p.count))


# --------------------------------------------------------------------------------------------------
# Checks


def _lines_of(text: str, positions: Iterable[int]) -> Iterator[int]:
    """1-based line numbers of increasing character ``positions`` in ``text`` (one pass)."""
    line, last = 1, 0
    for position in positions:
        line += text.count("\n", last, position)
        last = position
        yield line


def _check_lines(path: Path, fmt: str, problems: _Collector) -> None:
    """Line-level oddities the readers accept silently: whitespace-only lines and runs of blank lines
    (CoNLL, CoNLL-U), blank lines skipped in JSON lines and CSV files.

    The file is scanned with regular expressions on its whole text (the readers have already checked
    that it is UTF-8), which is several times faster than going line by line.
    """
    if fmt == "json":
        return
    text = path.read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # the line breaks iter_lines knows
    if fmt in _LINE_FORMATS:
        spaces = [m.start() for m in re.finditer(r"^[ \t]+$", text, re.M)]
        for line in _lines_of(text, spaces):
            problems.add("whitespace_line", "warning", "lines holding only spaces or tabs (read as sentence "
                         "breaks); make them empty if a break is meant", f"{path}:{line}")
        runs = [m.start() + 1 for m in re.finditer(r"\n\n\n+", text)]  # whitespace-only lines: above
        for line in _lines_of(text, runs):
            problems.add("blank_lines", "info", "several blank lines in a row (read as one sentence break)",
                         f"{path}:{line}")
    else:
        blanks = [m.start() for m in re.finditer(r"^[ \t]*$", text, re.M) if m.start() < len(text)]
        for line in _lines_of(text, blanks):
            problems.add("blank_lines", "info", "blank lines (skipped)", f"{path}:{line}")


def _check_words(example: Example, fmt: str, problems: _Collector) -> None:
    """Word-level oddities: empty, mis-decoded, invisible-character, spaced or very long words."""
    for i, word in enumerate(example.tokens):
        if not word.strip():
            problems.add("empty_word", "warning", "empty or whitespace-only words (they get no sub-token; "
                         "drop them)", word_place(example, fmt, i))
        elif _MOJIBAKE.search(word):
            problems.add("mojibake", "warning", "words that look like UTF-8 read as Latin-1 (Ã©, â€™); "
                         "re-encode the source file", f"{word_place(example, fmt, i)}: {word!r}")
        elif _INVISIBLE.search(word):
            problems.add("invisible_characters", "warning", "words with control, zero-width or replacement "
                         "(U+FFFD) characters", f"{word_place(example, fmt, i)}: {word!r}")
        elif fmt not in _LINE_FORMATS and any(ch.isspace() for ch in word):
            problems.add("space_in_word", "info", "words containing spaces (they become several "
                         "sub-word groups; CoNLL output replaces the spaces)", f"{word_place(example, fmt, i)}: {word!r}")
        elif len(word) > _LONG_WORD:
            problems.add("long_word", "info", f"words longer than {_LONG_WORD} characters (URLs, joined lines?)",
                         f"{word_place(example, fmt, i)}: {word[:40]!r}...")
        if word == DOCSTART and fmt not in _LINE_FORMATS:
            problems.add("docstart_word", "warning", f"{DOCSTART} inside a sentence: a document marker read as "
                         "a word; remove these records", word_place(example, fmt, i))


def _check_tags(examples: Sequence[Example], fmt: str, scheme: str, problems: _Collector) -> None:
    """Tags that break ``scheme``, each at its ``file:line``."""
    for example in examples:
        for index, problem in validate_tags(example.tags, scheme) if example.tags else ():  # type: ignore[arg-type]
            problems.add("invalid_tags", "error", f"tags that break {scheme} (training repairs them, "
                         "--strict_labels refuses them; fix the files)", f"{word_place(example, fmt, index)}: {problem}")


def _check_coverage(stats: Mapping[str, SplitStats], names: Sequence[str] | None, problems: _Collector) -> None:
    """Tags present in some splits only, and named labels never used."""
    present = {split: set(s.tags) for split, s in stats.items()}
    every = set().union(*present.values()) if present else set()
    for tag in sorted(every):
        have = [split for split in stats if tag in present[split]]
        missing = [split for split in stats if tag not in present[split]]
        if not missing:
            continue
        detail = f"{tag!r}: in {', '.join(have)}; not in {', '.join(missing)}"
        if "train" in missing:
            problems.add("tag_not_in_train", "warning", "tags in evaluation splits but never in train (the "
                         "model cannot learn them)", detail)
        else:
            problems.add("tag_in_some_splits", "info", "tags missing from some evaluation splits", detail)
    unused = [n for n in names or () if n not in every]
    if unused:
        problems.add("unused_label_names", "info", "label names the data never uses",
                     ", ".join(unused), count=len(unused))


# --------------------------------------------------------------------------------------------------
# Duplicates


def normalise(tokens: Sequence[str]) -> str:
    """The form near-duplicates share: lowercase, digits as ``0``, punctuation and symbols removed.

    >>> normalise(["The", "U.S.", "won", "3-1", "!"])
    'the us won 00'
    """
    text = re.sub(r"[^\w\s]|_", "", " ".join(tokens).lower())
    return " ".join(re.sub(r"\d", "0", text).split())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def _duplicates(splits: Mapping[str, Sequence[Example]], keep: int, problems: _Collector) -> dict[str, Any]:
    """Duplicates within each split, and evaluation sentences also found (exactly or nearly) in train."""
    exact: dict[str, dict[bytes, int]] = {}
    near: dict[str, dict[bytes, int]] = {}
    within: dict[str, int] = {}
    for split, examples in splits.items():
        exact[split], near[split] = {}, {}
        repeats = 0
        for index, example in enumerate(examples):
            key = _digest("\u0001".join(example.tokens))
            repeats += key in exact[split]
            exact[split].setdefault(key, index)
            form = normalise(example.tokens)
            if form:
                near[split].setdefault(_digest(form), index)
        within[split] = repeats
    shared: dict[str, dict[str, Any]] = {}
    base = "train" if "train" in splits else None
    for split, examples in splits.items():
        if base is None or split == base:
            continue
        hits: list[tuple[int, int, str]] = []
        n_exact = n_near = n_long = 0
        for index, example in enumerate(examples):
            key = _digest("\u0001".join(example.tokens))
            other = exact[base].get(key)
            kind = "exact"
            if other is None:
                form = normalise(example.tokens)
                other = near[base].get(_digest(form)) if form else None
                kind = "near"
            if other is None:
                continue
            n_exact += kind == "exact"
            n_near += kind == "near"
            n_long += len(example.tokens) >= 5
            hits.append((index, other, kind))
        hits.sort(key=lambda h: -len(examples[h[0]].tokens))  # the longest are the telling ones
        firsts = {j: (i, j, kind) for i, j, kind in reversed(hits)}  # one example per train sentence
        shown = [f"{examples[i].origin} = {splits[base][j].origin} ({kind}): {_preview(examples[i].tokens)}"
                 for i, j, kind in sorted(firsts.values(), key=lambda h: -len(examples[h[0]].tokens))[:keep]]
        shared[split] = {"exact": n_exact, "near": n_near, "five_words_or_more": n_long, "examples": shown}
        message = (f"{split} sentences also in train ({n_exact} exact, {n_near} near; {n_long} of 5+ words): "
                   f"scores on {split} are optimistic")
        for place in shown:
            problems.add(f"leakage_{split}", "warning", message, place, count=0)
        if hits:
            problems.add(f"leakage_{split}", "warning", message, count=len(hits))
    return {"within_split": within, "shared_with_train": shared}


# --------------------------------------------------------------------------------------------------
# Lengths


def _histogram(lengths: Sequence[int], edges: Sequence[int]) -> list[int]:
    """Counts of ``edges[k] <= length < edges[k + 1]``; ``edges`` must go past the longest."""
    counts = [0] * (len(edges) - 1)
    for length in lengths:
        counts[bisect.bisect_right(edges, length) - 1] += 1
    return counts


def _edges(longest: int) -> list[int]:
    """Histogram bin edges: powers-of-two-ish steps up to past ``longest``."""
    edges = [0, 8, 16, 32, 64, 128, 256, 512, 1024]
    while edges[-1] <= longest:
        edges.append(edges[-1] * 2)
    return edges[: next(k for k, e in enumerate(edges) if e > longest) + 1]


def _subtoken_lengths(tokenizer: Any, examples: Sequence[Example], split: str, batch_size: int = 1000) -> list[int]:
    """Model input length of each sentence in sub-tokens, special tokens included."""
    lengths: list[int] = []
    with progress_bar(total=len(examples), desc=f"tokenizing {split}", unit=" sentences") as bar:
        for offset in range(0, len(examples), batch_size):
            batch = [list(e.tokens) for e in examples[offset:offset + batch_size]]
            encoded = tokenizer(batch, is_split_into_words=True, add_special_tokens=True)
            lengths += [len(ids) for ids in encoded["input_ids"]]
            bar.update(len(batch))
    return lengths


def _lengths(splits: Mapping[str, Sequence[Example]], tokenizer: Any, max_length: int, model_limit: int | None,
             problems: _Collector) -> dict[str, Any]:
    unit = "sub-tokens" if tokenizer is not None else "words"
    per_split = {split: (_subtoken_lengths(tokenizer, examples, split) if tokenizer is not None
                         else [len(e.tokens) for e in examples]) for split, examples in splits.items()}
    longest = max((max(v, default=0) for v in per_split.values()), default=0)
    edges = _edges(longest)
    result: dict[str, Any] = {"unit": unit, "max_length": max_length if tokenizer is not None else None,
                              "model_limit": model_limit, "edges": edges, "splits": {}}
    for split, lengths in per_split.items():
        entry = {"histogram": _histogram(lengths, edges), "longest": max(lengths, default=0),
                 "mean": round(sum(lengths) / len(lengths), 2) if lengths else 0.0}
        if tokenizer is not None:
            over = sorted((i for i, n in enumerate(lengths) if n > max_length), key=lambda i: -lengths[i])
            entry["over_max_length"] = len(over)
            entry["over_model_limit"] = sum(n > model_limit for n in lengths) if model_limit else 0
            for i in over:
                problems.add("over_max_length", "info", f"sentences longer than --max_length {max_length} "
                             "sub-tokens: tagtune splits them into overlapping windows, upstream run_ner.py "
                             "truncates them (their tail is never trained on or scored)",
                             f"{splits[split][i].origin}: {lengths[i]} sub-tokens")
        result["splits"][split] = entry
    return result


# --------------------------------------------------------------------------------------------------
# The whole data set


def diagnose(files: Mapping[str, Path], cfg: DataConfig = DataConfig(), *, tokenizer: Any = None,
             max_length: int = 128, keep: int = 5, spans: SpanConfig | None = None) -> Diagnosis:
    """Read every file and report what it holds and what is wrong.

    Args:
        files: ``{split: path}``, e.g. from :func:`resolve_inputs`.
        cfg: Reading options (task, tag column, label names file, format).
        spans: How span data is read (the Label Studio annotator); its problems are counted, not raised.
        tokenizer: A fast tokenizer to measure sentences in sub-tokens; ``None``: words only.
        max_length: The model input length to check sentences against (``--max_seq_length``).
        keep: Places listed per kind of problem.

    Raises:
        TagtuneError: No file could be read (the first file's error); a file that cannot be read while
            others can is reported as an ``unreadable`` problem instead.
    """
    problems = _Collector(keep)
    splits: dict[str, list[Example]] = {}
    stats: dict[str, SplitStats] = {}
    formats: dict[str, str] = {}
    names: list[str] | None = None
    first_error: TagtuneError | None = None
    for split, path in files.items():
        try:
            fmt = cfg.format if cfg.format != "auto" else detect_format(path)
            if fmt in SPAN_FORMATS:
                examples, file_names = _read_spans(path, fmt, cfg, spans, problems), None
            else:
                examples, file_names = read_file(path, cfg, split=split, format=fmt)
                _check_lines(path, fmt, problems)
        except TagtuneError as error:
            first_error = first_error or error
            problems.add("unreadable", "error", "files that cannot be read", " ".join(str(error).split()))
            continue
        splits[split], formats[split] = examples, fmt
        names = names or file_names
        stats[split] = _split_stats(split, path, fmt, examples)
        for example in examples:
            _check_words(example, fmt, problems)
    if not splits:
        assert first_error is not None
        raise first_error
    scheme = detect_scheme(e.tags for examples in splits.values() for e in examples if e.tags)
    for split, examples in splits.items():
        _check_tags(examples, formats[split], scheme, problems)
    prefixed = {split: s.scheme for split, s in stats.items() if s.scheme != "none"}  # only-O splits say nothing
    if len(set(prefixed.values())) > 1:
        problems.add("mixed_schemes", "warning", "splits use different tagging schemes ("
                     + ", ".join(f"{split}: {scheme}" for split, scheme in prefixed.items()) + "); convert them to one")
    _check_coverage(stats, names, problems)
    labels, _ = build_label_list(splits, names)
    model_limit = _model_limit(tokenizer)
    lengths = _lengths(splits, tokenizer, max_length, model_limit, problems)
    if tokenizer is not None and model_limit:
        over = sum(entry["over_model_limit"] for entry in lengths["splits"].values())
        if over:
            problems.add("over_model_limit", "warning", f"sentences longer than the model's {model_limit} "
                         "positions: upstream run_ner.py cannot see them whole (tagtune windows them)", count=over)
    duplicates = _duplicates(splits, keep, problems)
    return Diagnosis(stats, scheme, labels, problems.sorted(), lengths, duplicates)


def _read_spans(path: Path, fmt: str, cfg: DataConfig, spans: SpanConfig | None,
                problems: _Collector) -> list[Example]:
    """Read span data counting its problems (overlaps, bad offsets, drift ...) instead of raising them."""
    issues = SpanIssues(strict=False, keep=problems.keep)
    examples: list[Example] = list(read_spans(path, fmt, cfg, span_config(cfg, spans), issues))
    if not examples:
        raise TagtuneError(f"{path}: no sentences (read as {fmt}); expected records with text")
    for kind, count in issues.counts.items():
        severity, message = ISSUE_KINDS[kind]
        for place in issues.places.get(kind, []):
            problems.add(kind, severity, message, place, count=0)
        problems.add(kind, severity, message, count=count)
    return examples


def _model_limit(tokenizer: Any) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def _split_stats(split: str, path: Path, fmt: str, examples: Sequence[Example]) -> SplitStats:
    tags: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    spans: Counter[str] = Counter()
    split_words = 0
    docs = set()
    for example in examples:
        if example.doc is not None:
            docs.add(example.doc)
        if example.tags is not None:
            tags.update(example.tags)
        if isinstance(example, SpanExample):
            spans.update(span.label for span in example.spans)
            split_words += example.split_words
    labelled = [e.tags for e in examples if e.tags is not None]
    scheme = detect_scheme(labelled)
    if scheme != "none":
        for tag_seq in labelled:
            entities.update(span.type for span in get_entities(tag_seq))
    return SplitStats(
        split=split, path=str(path), format=fmt, sentences=len(examples), words=sum(len(e.tokens) for e in examples),
        documents=len(docs), longest=max((len(e.tokens) for e in examples), default=0), scheme=scheme,
        tags=dict(tags.most_common()), entities=dict(sorted(entities.items())), spans=dict(sorted(spans.items())),
        split_words=split_words,
    )
