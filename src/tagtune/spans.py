"""Text with labelled character spans <-> words with IOB2 tags, for data from annotation tools.

Annotation tools (spaCy/Prodigy, Doccano, Label Studio, brat, GLiNER) store a text and labelled
character spans. :func:`to_example` turns them into a :class:`SpanExample`: the words are the text's
:func:`tagtune.predict.pretokenize` words, so training and raw-text prediction see the same words; a
span boundary that falls inside a word splits that word there (never drops or stretches a span); the
example keeps the text, each word's character offsets and the spans, so predicted tags go back to
character spans (:func:`example_spans`).

Checks (:func:`check_spans`) name the file and record of the first bad span: offsets outside the text,
start after end, a ``text`` field that differs from ``text[start:end]`` (offset drift), labels that are
not usable tag types; overlapping or nested spans are an error naming both unless
``overlapping_spans="longest"`` keeps the longest. :class:`SpanIssues` raises those (readers) or counts
them (``tagtune inspect``), and counts the recoverable ones (split words, empty spans) for one warning
each.

>>> issues = SpanIssues()
>>> example = to_example("Angela Merkel visited Paris.", check_spans(
...     "Angela Merkel visited Paris.", [RawSpan(0, 13, "PER", None, "a.jsonl:1", "span #0"),
...     RawSpan(22, 27, "LOC", None, "a.jsonl:1", "span #1")], SpanConfig(), issues), "a.jsonl:1", SpanConfig(), issues)
>>> list(zip(example.tokens, example.tags))
[('Angela', 'B-PER'), ('Merkel', 'I-PER'), ('visited', 'O'), ('Paris', 'B-LOC'), ('.', 'O')]
>>> example_spans(example, example.tags)
[CharSpan(start=0, end=13, label='PER'), CharSpan(start=22, end=27, label='LOC')]
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal, NamedTuple

from tagtune.corpus import Example
from tagtune.errors import DataFormatError, LabelSchemeError, TagtuneError

OverlapPolicy = Literal["error", "longest"]
OVERLAP_POLICIES: tuple[str, ...] = ("error", "longest")

# kind -> (severity, what it is and what happens): the text of warnings and of `tagtune inspect`.
ISSUE_KINDS: dict[str, tuple[str, str]] = {
    "offset_out_of_range": ("error", "span offsets outside the text"),
    "start_after_end": ("error", "spans whose start is after their end"),
    "text_mismatch": ("error", "spans whose 'text' differs from the text at their offsets (offset drift)"),
    "bad_label": ("error", "span labels that cannot be tag types (empty, 'O', whitespace, unknown)"),
    "overlap": ("error", "overlapping or nested spans (--overlapping_spans longest keeps the longest)"),
    "overlap_dropped": ("warning", "overlapping spans dropped: --overlapping_spans longest kept the longest"),
    "split_word": ("warning", "span boundaries inside a word: the word is split there"),
    "empty_span": ("warning", "empty spans (start == end) dropped"),
    "blank_span": ("warning", "spans covering only whitespace dropped"),
    "duplicate_span": ("warning", "the same span given twice, kept once"),
    "padded_span": ("info", "spans with leading or trailing whitespace, trimmed to their words"),
    "utf16_offsets": ("info", "Label Studio offsets counted in UTF-16 units (older versions), converted"),
    "skipped_record": ("warning", "records skipped (no completed annotation, rejected or cancelled)"),
    "several_annotations": ("info", "tasks annotated several times: one annotation read per task (--annotator)"),
}


class CharSpan(NamedTuple):
    """A labelled character span: ``text[start:end]`` has the type ``label``."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class RawSpan:
    """A span as read from a file, before checks.

    Attributes:
        start / end: Character offsets (end exclusive) into the record's text.
        label: The span's type.
        text: The span's own ``text`` field when the file has one (checked against the offsets).
        where: The record, for messages: ``"a.jsonl:3"``, ``"a.json record #2"``, ``"doc.ann:7"``.
        name: The span within the record: ``"span #0"`` or the brat id ``"T3"``.
    """

    start: int
    end: int
    label: str
    text: str | None
    where: str
    name: str

    def describe(self, text: str) -> str:
        return f"{self.name} [{self.start}, {self.end}) {self.label} {_clip(text[self.start:self.end])!r}"


@dataclass(frozen=True)
class SpanExample(Example):
    """An :class:`~tagtune.corpus.Example` read from text with character spans.

    Attributes:
        text: The text the words come from.
        offsets: ``(start, end)`` of each word in ``text``.
        spans: The labelled spans after the checks (trimmed to their words), offsets into ``text``.
        text_start: Where ``text`` starts in its source document (brat files are read line by line).
        split_words: Words split at span boundaries in this example.
    """

    text: str = ""
    offsets: tuple[tuple[int, int], ...] = ()
    spans: tuple[CharSpan, ...] = ()
    text_start: int = 0
    split_words: int = 0


@dataclass(frozen=True)
class SpanConfig:
    """How span data is read.

    Attributes:
        overlapping_spans: ``error`` (default) refuses overlapping or nested spans naming both;
            ``longest`` keeps the longest of each group with one counted warning.
        annotator: Which Label Studio annotation of a task is read: ``latest`` (default), ``first``,
            an annotator (``completed_by`` id or e-mail), or ``predictions`` (pre-annotations).
        labels: The span types allowed (from ``--label_names_file``); ``None``: any.
    """

    overlapping_spans: OverlapPolicy = "error"
    annotator: str = "latest"
    labels: frozenset[str] | None = None

    def __post_init__(self) -> None:
        from tagtune.errors import ConfigError

        if self.overlapping_spans not in OVERLAP_POLICIES:
            raise ConfigError(f"--overlapping_spans {self.overlapping_spans!r} is not one of "
                              f"{', '.join(OVERLAP_POLICIES)}")
        if not self.annotator:
            raise ConfigError("--annotator is empty; pass latest, first, predictions or an annotator id")


class SpanIssues:
    """Problems of span data: errors raised at once (``strict``, the readers) or counted (``inspect``),
    recoverable ones counted with their first places.

    Args:
        strict: Raise errors; when ``False`` they are counted and the offending span is dropped.
        keep: Places kept per kind.
    """

    def __init__(self, strict: bool = True, keep: int = 5) -> None:
        self.strict = strict
        self.keep = keep
        self.counts: Counter[str] = Counter()
        self.places: dict[str, list[str]] = {}

    def count(self, kind: str, place: str, n: int = 1) -> None:
        assert kind in ISSUE_KINDS, kind
        self.counts[kind] += n
        places = self.places.setdefault(kind, [])
        if len(places) < self.keep:
            places.append(place)

    def fail(self, kind: str, message: str, error: type[TagtuneError] = DataFormatError) -> None:
        """Raise ``error(message)``, or count it when not strict (the caller then drops the span)."""
        if self.strict:
            raise error(message)
        self.count(kind, message)

    def warnings(self, source: str) -> list[str]:
        """One line per counted kind, with its first place: what readers add to ``Corpus.warnings``."""
        lines = []
        for kind, n in self.counts.items():
            first = self.places[kind][0] if self.places.get(kind) else ""
            lines.append(f"{source}: {ISSUE_KINDS[kind][1]}: {n} (first: {first})")
        return lines


def one_line(text: str) -> str:
    """``text`` with its line breaks as spaces: the text of a span on one line of a brat ``.ann`` file.

    >>> one_line("German\\r\\ncall\\nnow")
    'German call now'
    """
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Checks


def check_label(label: object, where: str, cfg: SpanConfig, issues: SpanIssues) -> bool:
    """Whether ``label`` can be a tag type (else raised or counted as ``bad_label``)."""
    problem = None
    if not isinstance(label, str) or not label:
        problem = f"has the label {label!r}; expected a non-empty string"
    elif label == "O":
        problem = "has the label 'O', which means no entity; drop the span or rename the label"
    elif any(ch.isspace() for ch in label):
        problem = (f"has the label {label!r}, holding whitespace (tags are written in space-separated "
                   f"columns); rename it, e.g. {'_'.join(label.split())!r}")
    elif cfg.labels is not None and label not in cfg.labels:
        problem = (f"has the label {label!r}, not among the known types ({', '.join(sorted(cfg.labels))}); "
                   "fix the label or the label list")
    if problem is not None:
        issues.fail("bad_label", f"{where} {problem}", LabelSchemeError)
    return problem is None


def check_spans(text: str, spans: Sequence[RawSpan], cfg: SpanConfig, issues: SpanIssues) -> list[RawSpan]:
    """The spans of ``text`` that pass the checks, in order of start (longest first).

    Raises (``issues.strict``) or counts: offsets outside the text, start after end, a ``text`` field
    that differs from ``text[start:end]``, bad labels. Empty spans and exact duplicates are dropped and
    counted.

    Raises:
        DataFormatError: Bad offsets or text (naming the record and the span).
        LabelSchemeError: A label that cannot be a tag type.
    """
    kept: list[RawSpan] = []
    for span in spans:
        where = f"{span.where}: {span.name} [{span.start}, {span.end})"
        if span.start < 0 or span.end > len(text):
            issues.fail("offset_out_of_range", f"{where} {span.label} lies outside the text (0..{len(text)} "
                        "characters); offsets are characters of the text, end exclusive: fix the offsets")
        elif span.start > span.end:
            issues.fail("start_after_end", f"{where} {span.label} starts after it ends; fix the offsets")
        elif span.text is not None and text[span.start:span.end] != span.text:
            issues.fail("text_mismatch", f"{where} {span.label}: its text {_clip(span.text)!r} differs from "
                        f"the text at those offsets {_clip(text[span.start:span.end])!r}; the offsets have "
                        "drifted: re-export or fix them")
        elif check_label(span.label, f"{span.where}: {span.name}", cfg, issues):
            if span.start == span.end:
                issues.count("empty_span", f"{span.where}: {span.name} [{span.start}, {span.end}) {span.label}")
            else:
                kept.append(span)
    kept.sort(key=lambda s: (s.start, -s.end, s.label))
    unique: list[RawSpan] = []
    for span in kept:
        last = unique[-1] if unique else None
        if last is not None and (last.start, last.end, last.label) == (span.start, span.end, span.label):
            issues.count("duplicate_span", f"{span.where}: {span.describe(text)} repeats {last.name}")
        else:
            unique.append(span)
    return unique


def resolve_overlaps(text: str, spans: Sequence[RawSpan], cfg: SpanConfig, issues: SpanIssues) -> list[RawSpan]:
    """Spans without overlaps: an overlap is an error naming both spans, or with ``longest`` the longest
    span of each overlapping group is kept (earliest first on ties) and the others counted.

    ``spans`` are sorted by start, as :func:`check_spans` returns them.

    Raises:
        DataFormatError: Two spans overlap and ``cfg.overlapping_spans`` is ``error`` (strict issues).
    """
    for a, b in pairwise(spans):
        if b.start < a.end:
            break
    else:
        return list(spans)
    if cfg.overlapping_spans == "error":
        for a, b in pairwise(spans):
            if b.start < a.end:
                other = b.name if b.where == a.where else f"{b.name} ({b.where})"
                issues.fail("overlap", f"{a.where}: {a.describe(text)} overlaps {other} [{b.start}, {b.end}) "
                            f"{b.label} {_clip(text[b.start:b.end])!r}; fix one of them, or pass "
                            "--overlapping_spans longest to keep the longest")
                if not issues.strict:
                    break  # counted once per record; the longest are kept below
    chosen: list[RawSpan] = []
    for span in sorted(spans, key=lambda s: (s.start - s.end, s.start)):
        if all(span.end <= c.start or c.end <= span.start for c in chosen):
            chosen.append(span)
        elif cfg.overlapping_spans == "longest":
            issues.count("overlap_dropped", f"{span.where}: {span.describe(text)}")
    return sorted(chosen, key=lambda s: s.start)


# --------------------------------------------------------------------------------------------------
# Words and tags


def pretokenizer() -> Callable[[str], list[tuple[int, int]]]:
    from tagtune.predict import pretokenize  # imported here: it brings torch, and readers stay fast

    return pretokenize


def to_example(text: str, spans: Sequence[RawSpan], where: str, cfg: SpanConfig, issues: SpanIssues, *,
               id: str = "", doc: str | None = None, labelled: bool = True, text_start: int = 0,
               words: Sequence[tuple[int, int]] | None = None) -> SpanExample:
    """The example of ``text`` with checked ``spans`` (:func:`check_spans`): pretokenized words, split
    where a span boundary falls inside one, IOB2 tags (``None`` when not ``labelled``).

    Args:
        words: ``pretokenize(text)`` when the caller has it already.

    Raises:
        DataFormatError: The text has no words, or spans overlap (see :func:`resolve_overlaps`).
    """
    words = pretokenizer()(text) if words is None else words
    if not words:
        raise DataFormatError(f"{where}: the text has no words ({_clip(text)!r}); every example needs at least "
                              "one word: drop the record")
    starts = [s for s, _ in words]
    visible = []
    for span in spans:
        k = bisect.bisect_left(starts, span.end)  # words are disjoint: the last one starting before the
        if k and words[k - 1][1] > span.start:     # span's end is the one that can reach into it
            visible.append(span)
        else:
            issues.count("blank_span", f"{span.where}: {span.describe(text)}")
    spans = resolve_overlaps(text, visible, cfg, issues)
    cuts = sorted({b for span in spans for b in (span.start, span.end)})
    offsets: list[tuple[int, int]] = []
    split = 0
    for start, end in words:
        inside = cuts[bisect.bisect_right(cuts, start):bisect.bisect_left(cuts, end)]
        if inside:
            split += 1
            for span in spans:
                if any(b in (span.start, span.end) for b in inside):
                    issues.count("split_word", f"{span.where}: {span.describe(text)} cuts the word "
                                 f"{_clip(text[start:end])!r}")
                    break
        bounds = [start, *inside, end]
        offsets += pairwise(bounds)
    tags = ["O"] * len(offsets)
    kept: list[CharSpan] = []
    word_starts = [s for s, _ in offsets]
    for span in spans:
        first = bisect.bisect_left(word_starts, span.start)
        last = bisect.bisect_left(word_starts, span.end)  # both ends are word edges after the splits
        if last == first:
            continue
        tags[first:last] = [f"B-{span.label}"] + [f"I-{span.label}"] * (last - first - 1)
        covered = CharSpan(offsets[first][0], offsets[last - 1][1], span.label)
        if (covered.start, covered.end) != (span.start, span.end):
            issues.count("padded_span", f"{span.where}: {span.describe(text)}")
        kept.append(covered)
    return SpanExample(tuple(text[s:e] for s, e in offsets), tuple(tags) if labelled else None, doc, where, id,
                       text=text, offsets=tuple(offsets), spans=tuple(kept), text_start=text_start,
                       split_words=split)


def example_spans(example: SpanExample, tags: Sequence[str]) -> list[CharSpan]:
    """Character spans of ``tags`` (one per word of ``example``, IOB2/BIOES), offsets into ``example.text``."""
    from tagtune.labels import get_entities

    if len(tags) != len(example.offsets):
        raise ValueError(f"{example.origin}: {len(tags)} tags for {len(example.offsets)} words")
    return [CharSpan(example.offsets[e.start][0], example.offsets[e.end - 1][1], e.type) for e in get_entities(tags)]


def span_types(names: Sequence[str]) -> frozenset[str]:
    """The entity types of a label list (``["O", "B-PER", "I-PER", "LOC"]`` -> ``{"PER", "LOC"}``).

    >>> sorted(span_types(["O", "B-PER", "I-PER", "LOC"]))
    ['LOC', 'PER']
    """
    from tagtune.labels import split_tag

    return frozenset(split_tag(name)[1] or name for name in names if name != "O")


def labels_from(path: Path | None, column: str) -> frozenset[str] | None:
    """The span types named by ``--label_names_file`` (a list of types or tags), or ``None``."""
    if path is None:
        return None
    from tagtune.readers_records import load_label_names

    return span_types(load_label_names(Path(path), column))


# --------------------------------------------------------------------------------------------------
# Scoring and writing predictions of span data (the hooks of evaluation)


def span_scores(examples: Sequence[Example], predictions: Sequence[Sequence[str]]) -> dict | None:
    """Character-span precision/recall/F1 (exact ``(start, end, label)``) of predicted tags against the
    spans the examples were read with; ``None`` when the examples were not read from span data.

    Reported next to the word-level scores of :func:`tagtune.metrics.score`; both agree when every span
    falls on word boundaries.
    """
    from tagtune.metrics import CharSpanScorer

    if not examples or not all(isinstance(e, SpanExample) for e in examples):
        return None
    scorer = CharSpanScorer()
    for example, tags in zip(examples, predictions, strict=True):
        scorer.update(example.spans, example_spans(example, tags))  # type: ignore[arg-type]
    return scorer.result()


def span_metrics(examples: Sequence[Example], predictions: Sequence[Sequence[str]], prefix: str = "") -> dict[str, float]:
    """:func:`span_scores` as flat metrics next to the word-level ones: ``{prefix}span_precision``,
    ``span_recall``, ``span_f1``, ``span_number``; empty when the examples are not span data."""
    result = span_scores(examples, predictions)
    if result is None:
        return {}
    return {f"{prefix}span_{key}": result[key] for key in ("precision", "recall", "f1", "number")}


def span_prediction_lines(examples: Sequence[Example], predictions: Sequence[Sequence[str]]) -> Iterator[str]:
    """Predictions of span data as JSON lines that the ``spans`` reader reads back:
    ``{"id", "doc"?, "text", "spans": [{"start", "end", "label"}]}`` per example, offsets into its text."""
    for example, tags in zip(examples, predictions, strict=True):
        assert isinstance(example, SpanExample), "span predictions need examples read from span data"
        record: dict = {"id": example.id}
        if example.doc is not None:
            record["doc"] = example.doc
        record["text"] = example.text
        record["spans"] = [{"start": s.start, "end": s.end, "label": s.label} for s in example_spans(example, tags)]
        yield json.dumps(record, ensure_ascii=False) + "\n"
