"""Tagging schemes, entity spans and label lists: pure functions over tag names.

Schemes: ``IOB1`` (CoNLL-2003's original files: ``I-`` opens an entity, ``B-`` only separates two
adjacent entities of one type), ``IOB2`` (``B-`` opens every entity), ``BIOES`` (``E-`` closes,
``S-`` is a one-word entity), ``IO`` (only ``I-`` and ``O``) and ``none`` (tags without prefixes, such
as part-of-speech tags).

Span decoding comes in two flavours. :func:`get_entities` reproduces seqeval's default mode (the one
``conlleval.pl``, ``evaluate``'s seqeval metric and upstream ``run_ner.py`` report) on *any* input,
garbage included, so that tagtune's scores equal the published ones. :func:`get_strict_entities`
reproduces seqeval's ``mode="strict"``: only well-formed entities count.

Nothing here mutates its input or imports torch.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from tagtune.corpus import Corpus, Example
from tagtune.errors import LabelSchemeError

logger = logging.getLogger(__name__)

Scheme = Literal["IOB1", "IOB2", "BIOES", "IO", "none"]
SCHEMES: tuple[str, ...] = ("IOB1", "IOB2", "BIOES", "IO", "none")
SPLIT_ORDER: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Span:
    """One entity: its type and the words it covers, ``start`` inclusive, ``end`` exclusive."""

    type: str
    start: int
    end: int


# --------------------------------------------------------------------------------------------------
# Tag parsing


@lru_cache(maxsize=4096)
def split_tag(tag: str) -> tuple[str, str]:
    """Split a tag into ``(prefix, type)``; prefix is ``B I E S``, ``O`` for ``"O"``, ``""`` if none.

    >>> split_tag("B-PER"), split_tag("O"), split_tag("NOUN"), split_tag("I-MISC-X")
    (('B', 'PER'), ('O', ''), ('', 'NOUN'), ('I', 'MISC-X'))
    """
    if tag == "O":
        return "O", ""
    if len(tag) >= 2 and tag[1] == "-" and tag[0] in "BIES":
        return tag[0], tag[2:]
    return "", tag


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise LabelSchemeError(f"unknown tagging scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


# --------------------------------------------------------------------------------------------------
# seqeval-compatible (default mode) span decoding


@lru_cache(maxsize=4096)
def _seqeval_parts(tag: str) -> tuple[str, str]:
    # seqeval's default mode reads the first character as the prefix and what follows the first '-'
    # after it as the type, whatever the tag looks like ('PER' -> 'P', 'ER'); kept as is for equality.
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


class EntityDecoder:
    """Streaming form of :func:`get_entities`: feed tags one at a time, get entities as they close.

    Positions keep counting across calls, so one decoder can read a whole corpus as seqeval does
    (sentences joined with an ``"O"`` between them); :mod:`tagtune.metrics` relies on this.

    >>> decoder = EntityDecoder()
    >>> [decoder.step(tag) for tag in ["B-PER", "I-PER", "O"]]
    [None, None, Span(type='PER', start=0, end=2)]
    """

    __slots__ = ("_prev_tag", "_prev_type", "_begin", "position")

    def __init__(self) -> None:
        self._prev_tag = "O"
        self._prev_type = ""
        self._begin = 0
        self.position = 0

    def step(self, tag: str) -> Span | None:
        """Read the tag at :attr:`position`; return the entity that ended just before it, if any."""
        if not isinstance(tag, str) or not tag:
            raise LabelSchemeError(f"word {self.position}: empty or non-string tag {tag!r}")
        prefix, type_ = _seqeval_parts(tag)
        prev_tag, prev_type, i = self._prev_tag, self._prev_type, self.position
        ended = None
        if (
            prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and prefix in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_)
        ):
            ended = Span(prev_type, self._begin, i)
        if (
            prefix in ("B", "S")
            or (prev_tag in ("E", "S", "O") and prefix in ("E", "I"))
            or (prefix not in ("O", ".") and prev_type != type_)
        ):
            self._begin = i
        self._prev_tag, self._prev_type = prefix, type_
        self.position = i + 1
        return ended


def get_entities(tags: Sequence[str]) -> list[Span]:
    """Entities exactly as seqeval's default (non-strict) mode finds them, for any tag sequence.

    Equal to ``seqeval.metrics.sequence_labeling.get_entities(list(tags))`` with each
    ``(type, start, last)`` as ``Span(type, start, last + 1)``: ``I-`` after ``O`` opens an entity, a
    type change closes one, ``E-``/``S-`` are understood, tags without a prefix are read seqeval's way.

    Raises:
        LabelSchemeError: A tag is empty (seqeval fails with an ``IndexError`` there).

    >>> get_entities(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "S-ORG"])
    [Span(type='PER', start=0, end=2), Span(type='LOC', start=3, end=4), Span(type='LOC', start=4, end=5), Span(type='ORG', start=5, end=6)]
    """
    decoder = EntityDecoder()
    spans = [span for span in map(decoder.step, tags) if span is not None]
    last = decoder.step("O")
    if last is not None:
        spans.append(last)
    return spans


# --------------------------------------------------------------------------------------------------
# seqeval-compatible strict mode

_ALL = "IOBESUL"
# (previous prefixes, current prefixes, type condition): seqeval.scheme's pattern tables.
_Pattern = tuple[str, str, str]
_STRICT: dict[str, tuple[str, set[_Pattern], set[_Pattern], set[_Pattern]]] = {
    "IOB1": (
        "IOB",
        {("O", "I", "any"), ("I", "I", "diff"), ("B", "I", "any"), ("I", "B", "same"), ("B", "B", "same")},
        {("B", "I", "same"), ("I", "I", "same")},
        {("I", "I", "diff"), ("I", "O", "any"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
         ("B", "B", "same")},
    ),
    "IOB2": (
        "IOB",
        {(_ALL, "B", "any")},
        {("B", "I", "same"), ("I", "I", "same")},
        {("I", "O", "any"), ("I", "I", "diff"), ("I", "B", "any"), ("B", "O", "any"), ("B", "I", "diff"),
         ("B", "B", "any")},
    ),
    "BIOES": (
        "IOBES",
        {(_ALL, "B", "any"), (_ALL, "S", "any")},
        {("B", "I", "same"), ("B", "E", "same"), ("I", "I", "same"), ("I", "E", "same")},
        {("S", _ALL, "any"), ("E", _ALL, "any")},
    ),
}
_STRICT["IO"] = ("IO",) + _STRICT["IOB1"][1:]  # runs of one type, as IOB1 reads them


def _matches(patterns: set[_Pattern], prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    for prev_prefixes, cur_prefixes, condition in patterns:
        if prev[0] in prev_prefixes and cur[0] in cur_prefixes:
            if condition == "any" or (condition == "same") == (prev[1] == cur[1]):
                return True
    return False


def get_strict_entities(tags: Sequence[str], scheme: Scheme) -> list[Span]:
    """Well-formed entities only, as seqeval's ``mode="strict"`` with the matching scheme finds them.

    ``IOB2``: an entity starts at ``B-`` (a stray ``I-`` counts for nothing); ``BIOES``: ``B- I-* E-``
    or ``S-``; ``IOB1`` as seqeval's ``IOB1``; ``IO``: runs of one type.

    Raises:
        LabelSchemeError: A tag's prefix is not part of ``scheme``, or ``scheme`` is ``none``.

    >>> get_strict_entities(["I-PER", "O", "B-LOC", "I-LOC", "I-ORG"], "IOB2")
    [Span(type='LOC', start=2, end=4)]
    >>> get_strict_entities(["B-PER", "O", "B-LOC", "E-LOC", "S-ORG"], "BIOES")
    [Span(type='LOC', start=2, end=4), Span(type='ORG', start=4, end=5)]
    """
    _check_scheme(scheme)
    if scheme == "none":
        raise LabelSchemeError("tags without B-/I- prefixes (scheme 'none') have no entity spans")
    allowed, starts, insides, ends = _STRICT[scheme]
    tokens = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag or tag[0] not in allowed:
            raise LabelSchemeError(
                f"word {i}: tag {tag!r} is not allowed in {scheme} (allowed prefixes: {', '.join(allowed)})"
            )
        # seqeval's Token: first character is the prefix, the rest without '-' at either end the type.
        tokens.append((tag[0], tag[1:].strip("-") or "_"))
    outside = ("O", "_")
    tokens.append(outside)
    spans: list[Span] = []
    i, prev = 0, outside
    while i < len(tokens):
        token = tokens[i]
        if _matches(starts, prev, token):
            end, inner = i + 1, token
            while _matches(insides, inner, tokens[end]):
                inner = tokens[end]
                end += 1
            if _matches(ends, tokens[end - 1], tokens[end]):
                spans.append(Span(token[1], i, end))
            i = end
        else:
            i += 1
        prev = tokens[i - 1]
    return spans


# --------------------------------------------------------------------------------------------------
# Schemes: detection, conversion, validation, repair


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> Scheme:
    """The tagging scheme of a set of tag sequences.

    ``BIOES`` when any ``E-``/``S-`` tag occurs; else ``IOB1`` when entities mostly open with ``I-``
    (after ``O``, a sequence start or another type) and ``B-`` occurs; else ``IOB2`` when ``B-``
    occurs; else ``IO`` when ``I-`` occurs; else ``none`` (no prefixed tag at all; only ``O`` counts
    as ``none`` too).

    >>> detect_scheme([["B-PER", "I-PER", "O"]]), detect_scheme([["I-PER", "B-PER", "O", "I-LOC"]])
    ('IOB2', 'IOB1')
    >>> detect_scheme([["S-PER", "O"]]), detect_scheme([["I-PER", "O"]]), detect_scheme([["NOUN", "VERB"]])
    ('BIOES', 'IO', 'none')
    """
    prefixes: set[str] = set()
    opened_by_b = opened_by_i = 0
    for tags in tag_sequences:
        prev = ("O", "")
        for tag in tags:
            cur = split_tag(tag)
            prefixes.add(cur[0])
            continues = prev[0] in ("B", "I") and prev[1] == cur[1]
            if cur[0] == "B" and not continues:
                opened_by_b += 1
            elif cur[0] == "I" and not continues:
                opened_by_i += 1
            prev = cur
    if prefixes & {"E", "S"}:
        return "BIOES"
    if "B" in prefixes:
        return "IOB1" if opened_by_i > opened_by_b else "IOB2"
    if "I" in prefixes:
        return "IO"
    return "none"


def _segment(parsed: Sequence[tuple[str, str]]) -> tuple[list[bool], list[bool]]:
    """Where entities begin and end, reading prefixes leniently (any scheme, errors included).

    A word begins an entity unless it is ``I-X``/``E-X`` right after ``B-X``/``I-X``; it ends one
    when it is ``E-``/``S-`` or the next word does not continue it. Only prefixed words count.
    """
    n = len(parsed)
    begins = [False] * n
    for i, (prefix, type_) in enumerate(parsed):
        if prefix in ("B", "I", "E", "S"):
            prev = parsed[i - 1] if i else ("O", "")
            continues = prefix in ("I", "E") and prev[0] in ("B", "I") and prev[1] == type_
            begins[i] = not continues
    ends = [False] * n
    for i, (prefix, _) in enumerate(parsed):
        if prefix in ("B", "I", "E", "S"):
            next_continues = i + 1 < n and parsed[i + 1][0] in ("I", "E") and not begins[i + 1]
            ends[i] = prefix in ("E", "S") or not next_continues
    return begins, ends


def _encode(parsed: Sequence[tuple[str, str]], tags: Sequence[str], scheme: str) -> list[str]:
    begins, ends = _segment(parsed)
    out = list(tags)
    for i, (prefix, type_) in enumerate(parsed):
        if prefix not in ("B", "I", "E", "S"):
            continue
        if scheme == "IOB2":
            new = "B" if begins[i] else "I"
        elif scheme == "IOB1":
            prev = parsed[i - 1] if i else ("O", "")
            new = "B" if begins[i] and prev[0] in ("B", "I", "E", "S") and prev[1] == type_ else "I"
        elif scheme == "IO":
            new = "I"
        else:  # BIOES
            new = ("S" if ends[i] else "B") if begins[i] else ("E" if ends[i] else "I")
        out[i] = f"{new}-{type_}"
    return out


def to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1, IO (or BIOES) tags as IOB2; returns a new list, the input is left alone.

    An ``I-X`` that opens an entity becomes ``B-X``; ``S-X`` becomes ``B-X`` and ``E-X`` ``I-X``. Tags
    without a prefix are kept as they are.

    >>> to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"])
    ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC', 'B-ORG']
    """
    return _encode([split_tag(tag) for tag in tags], tags, "IOB2")


def _describe(tag: str | None) -> str:
    return "at sentence start" if tag is None else f"after {tag!r}"


def validate_tags(tags: Sequence[str], scheme: Scheme) -> list[tuple[int, str]]:
    """Problems of a tag sequence under ``scheme`` as ``(word index, problem)``; ``[]`` when valid.

    >>> validate_tags(["O", "I-PER", "B-LOC", "I-ORG"], "IOB2")
    [(1, "'I-PER' after 'O'"), (3, "'I-ORG' after 'B-LOC'")]
    >>> validate_tags(["B-PER", "O", "I-LOC", "E-LOC"], "BIOES")
    [(0, "'B-PER' before 'O'"), (2, "'I-LOC' after 'O'")]
    """
    _check_scheme(scheme)
    if scheme == "none":
        return []
    problems: list[tuple[int, str]] = []
    allowed = {"IOB1": "BI", "IOB2": "BI", "IO": "I", "BIOES": "BIES"}[scheme]
    parsed = [split_tag(tag) for tag in tags]
    n = len(tags)
    for i, (prefix, type_) in enumerate(parsed):
        tag = tags[i]
        prev_tag = tags[i - 1] if i else None
        next_tag = tags[i + 1] if i + 1 < n else None
        prev = parsed[i - 1] if i else ("O", "")
        nxt = parsed[i + 1] if i + 1 < n else ("O", "")
        after_same = prev[0] in ("B", "I") and prev[1] == type_
        before_same = nxt[0] in ("I", "E") and nxt[1] == type_
        if prefix == "O":
            continue
        if prefix == "":
            problems.append((i, f"{tag!r} has no {'-/'.join(allowed)}- prefix"))
        elif prefix not in allowed:
            problems.append((i, f"{tag!r} is not allowed in {scheme}"))
        elif scheme == "IOB2" and prefix == "I" and not after_same:
            problems.append((i, f"{tag!r} {_describe(prev_tag)}"))
        elif scheme == "IOB1" and prefix == "B" and not (prev[0] in ("B", "I") and prev[1] == type_):
            problems.append((i, f"{tag!r} {_describe(prev_tag)} (IOB1 uses B- only between two entities "
                                "of one type)"))
        elif scheme == "BIOES":
            if prefix in ("I", "E") and not after_same:
                problems.append((i, f"{tag!r} {_describe(prev_tag)}"))
            if prefix in ("B", "I") and not before_same:
                where = "at sentence end" if next_tag is None else f"before {next_tag!r}"
                problems.append((i, f"{tag!r} {where}"))
    return problems


def repair_tags(tags: Sequence[str], scheme: Scheme) -> list[str]:
    """The smallest change that makes ``tags`` valid ``scheme`` (valid input comes back unchanged).

    IOB2: an ``I-X`` that opens an entity becomes ``B-X``. BIOES: an entity's first word becomes
    ``B-``/``S-`` and its last ``E-``/``S-``. IOB1: ``B-X`` not between two ``X`` entities becomes
    ``I-X``. IO: every prefix becomes ``I-``. A tag without prefix is read as ``I-<tag>``. Returns a
    new list.

    >>> repair_tags(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], "IOB2")
    ['O', 'B-PER', 'I-PER', 'B-LOC', 'B-ORG']
    >>> repair_tags(["B-PER", "O", "I-LOC", "I-LOC"], "BIOES")
    ['S-PER', 'O', 'B-LOC', 'E-LOC']
    """
    _check_scheme(scheme)
    if scheme == "none":
        return list(tags)
    parsed = [("I", p[1]) if p[0] == "" else p for p in map(split_tag, tags)]
    return _encode(parsed, tags, scheme)


# --------------------------------------------------------------------------------------------------
# Label lists


def _ordered_splits(splits: Mapping[str, Sequence[Example]]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in splits] + [s for s in splits if s not in SPLIT_ORDER]


def _where(split: str, index: int, example: Example) -> str:
    return example.origin or f"{split} example #{index}"


def build_label_list(
    splits: Mapping[str, Sequence[Example]], known: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """The label list of a data set, deterministic and never alphabetical, plus warnings.

    With ``known`` names (ClassLabel names, a labels file): that order, then any tag of the data not
    among them, in order of first appearance, each with a warning. Without: ``O`` first, then each
    entity type in order of first appearance (train, validation, test, then other splits) with its
    tags in the order ``B I E S`` (those present), tags without prefix at their first appearance.
    Tags seen in validation/test but never in train are warned about.

    Raises:
        LabelSchemeError: ``known`` names a label twice.

    >>> train = [Example(("Acme", "Corp", "hires", "Ann", "Lee"), ("B-ORG", "I-ORG", "O", "B-PER", "I-PER"))]
    >>> test = [Example(("Oslo",), ("B-LOC",), origin="test.txt:3")]
    >>> build_label_list({"train": train, "test": test})
    (['O', 'B-ORG', 'I-ORG', 'B-PER', 'I-PER', 'B-LOC'], ["tag 'B-LOC' is in test (first at test.txt:3) but never in train; the model cannot learn it"])
    """
    first_seen: dict[str, tuple[str, str]] = {}  # tag -> (split, origin)
    for split in _ordered_splits(splits):
        for index, example in enumerate(splits[split]):
            for tag in example.tags or ():
                if tag not in first_seen:
                    first_seen[tag] = (split, _where(split, index, example))
    warnings: list[str] = []
    if known is not None:
        duplicates = sorted(name for name, count in Counter(known).items() if count > 1)
        if duplicates:
            raise LabelSchemeError(f"label names list {', '.join(map(repr, duplicates))} more than once; "
                                   "each label must be named once")
        labels = list(known)
        for tag, (split, origin) in first_seen.items():
            if tag not in labels:
                labels.append(tag)
                warnings.append(f"tag {tag!r} (first in {split} at {origin}) is not among the label names; "
                                "added at the end of the label list")
    else:
        groups: dict[tuple[str, str], set[str]] = {}
        for tag in first_seen:
            prefix, type_ = split_tag(tag)
            if prefix != "O":
                groups.setdefault(("T", type_) if prefix else ("", tag), set()).add(prefix)
        labels = ["O"] if "O" in first_seen else []
        for (kind, name), prefixes in groups.items():
            labels += [f"{p}-{name}" for p in "BIES" if p in prefixes] if kind else [name]
    if "train" in splits:
        for tag, (split, origin) in first_seen.items():
            if split != "train":
                warnings.append(f"tag {tag!r} is in {split} (first at {origin}) but never in train; "
                                "the model cannot learn it")
    return labels, warnings


# --------------------------------------------------------------------------------------------------
# Whole corpus


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _iob2_names(names: Sequence[str]) -> list[str]:
    """Label names after IOB1/IO -> IOB2: ``B-X`` added before the first ``I-X`` lacking one."""
    out: list[str] = []
    for name in names:
        prefix, type_ = split_tag(name)
        if prefix == "I" and f"B-{type_}" not in names and f"B-{type_}" not in out:
            out.append(f"B-{type_}")
        out.append(name)
    return out


def prepare_labels(
    corpus: Corpus, repair: bool = True, strict: bool = False
) -> tuple[Corpus, Scheme, list[str]]:
    """Settle the scheme and label list of a corpus; convert IOB1/IO to IOB2; check and repair tags.

    Args:
        corpus: As read; left untouched (the result holds new :class:`Example` objects where tags
            changed, and a new warnings list).
        repair: Repair invalid sequences (see :func:`repair_tags`) with one warning; when ``False``,
            they are kept with a warning.
        strict: Refuse invalid sequences instead.

    Returns:
        ``(corpus, scheme, labels)``: the scheme after conversion (``IOB2``, ``BIOES`` or ``none``)
        and :func:`build_label_list` with the corpus's label names as known names.

    Raises:
        LabelSchemeError: ``strict`` and a sequence is invalid; names the first place.
    """
    detected = detect_scheme(ex.tags for examples in corpus.splits.values() for ex in examples if ex.tags)
    scheme: Scheme = "IOB2" if detected in ("IOB1", "IO") else detected
    known = corpus.label_names
    if detected != scheme and known is not None:
        known = _iob2_names(known)
    splits: dict[str, list[Example]] = {}
    changed_tags = changed_sentences = 0
    first: str | None = None
    for split in _ordered_splits(corpus.splits):
        new_examples = []
        for index, example in enumerate(corpus.splits[split]):
            tags = example.tags
            if tags is not None and detected != scheme:
                tags = tuple(to_iob2(tags))
            problems = validate_tags(tags, scheme) if tags is not None else []
            if problems:
                position, problem = problems[0]
                where = f"{_where(split, index, example)} word {position + 1}"
                if strict:
                    raise LabelSchemeError(
                        f"{where}: invalid {scheme}: {problem}; fix the file, or drop --strict_labels to "
                        "repair it"
                    )
                if first is None:
                    first = f"{where}: {problem}"
                if repair:
                    repaired = tuple(repair_tags(tags, scheme))
                    changed_tags += sum(a != b for a, b in zip(repaired, tags))
                    tags = repaired
                else:
                    changed_tags += len({position for position, _ in problems})
                changed_sentences += 1
            new_examples.append(example if tags == example.tags else dataclasses.replace(example, tags=tags))
        splits[split] = new_examples
    splits = {split: splits[split] for split in corpus.splits}  # the caller's split order
    warnings = list(corpus.warnings)
    if changed_sentences:
        verb = "repaired" if repair else "kept"
        warnings.append(f"{verb} {_plural(changed_tags, f'invalid {scheme} tag')} in "
                        f"{_plural(changed_sentences, 'sentence')} (first: {first})")
    if detected != scheme:
        logger.info("converted %s tags to IOB2", detected)
    labels, label_warnings = build_label_list(splits, known)
    warnings += label_warnings
    return dataclasses.replace(corpus, splits=splits, warnings=warnings), scheme, labels


# --------------------------------------------------------------------------------------------------
# Constraints for decoding


def allowed_transitions(labels: Sequence[str], scheme: Scheme) -> np.ndarray:
    """Which label may follow which: bool ``[L + 1, L]``, row ``L`` being the sequence start.

    IOB2: ``I-X`` only after ``B-X``/``I-X``. IOB1: ``B-X`` only after ``B-X``/``I-X``. BIOES: ``I-X``
    and ``E-X`` only after ``B-X``/``I-X``, and nothing else after ``B-``/``I-``. IO and none: all.

    >>> allowed_transitions(["O", "B-PER", "I-PER"], "IOB2").astype(int).tolist()
    [[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]]
    """
    _check_scheme(scheme)
    parsed = [split_tag(label) for label in labels]
    n = len(labels)
    allowed = np.ones((n + 1, n), dtype=bool)
    if scheme in ("IO", "none"):
        return allowed
    for j, (to_prefix, to_type) in enumerate(parsed):
        for i in range(n + 1):
            from_prefix, from_type = parsed[i] if i < n else ("O", "")
            inside = from_prefix in ("B", "I") and from_type == to_type
            if scheme == "IOB2":
                allowed[i, j] = to_prefix != "I" or inside
            elif scheme == "IOB1":
                allowed[i, j] = to_prefix != "B" or inside
            else:  # BIOES
                allowed[i, j] = inside if to_prefix in ("I", "E") else from_prefix not in ("B", "I")
    return allowed


def allowed_ends(labels: Sequence[str], scheme: Scheme) -> np.ndarray:
    """Labels that may end a sequence: bool ``[L]``; in BIOES not ``B-``/``I-``, else all.

    >>> allowed_ends(["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BIOES").tolist()
    [True, False, False, True, True]
    """
    _check_scheme(scheme)
    if scheme != "BIOES":
        return np.ones(len(labels), dtype=bool)
    return np.array([split_tag(label)[0] not in ("B", "I") for label in labels], dtype=bool)
