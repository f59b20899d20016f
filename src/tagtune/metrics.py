"""Entity-level precision, recall and F1 plus token accuracy, equal to seqeval's default mode; and
character-span scores (exact ``(start, end, label)``) for data read as text with spans.

The numbers are the ones upstream ``run_ner.py`` reports through ``evaluate``'s seqeval metric
(``classification_report(output_dict=True)`` micro average, per-type rows, ``accuracy_score``), computed
without seqeval and streaming: :class:`EntityScorer` keeps a few counters per entity type, so its
memory does not grow with the data. Sentences are read as seqeval reads a list of sentences: joined
with an ``O`` between them (which only matters for garbage tags such as ``.X``).

:class:`EntityConfusion` breaks the errors down from the same entity spans: per gold entity exact,
wrong type, wrong boundary, wrong type and boundary or missed, plus spurious predictions.

Where a ratio is undefined (no predicted or no gold entities) it is ``0.0``, as seqeval's default
``zero_division="warn"`` gives, without the warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tagtune.labels import EntityDecoder, Span


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _prf(tp: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision, recall = _ratio(tp, predicted), _ratio(tp, gold)
    denominator = precision + recall
    # Same operations, in the same order, as seqeval's (sklearn's) F-beta with beta=1: equal to the bit.
    f1 = 2 * precision * recall / denominator if denominator else 0.0
    return precision, recall, f1


def _summary(counts: dict[str, list[int]]) -> tuple[dict[str, dict], float, float, float, int]:
    """Scores per type (sorted by name) and micro-averaged precision, recall, F1 and the gold count, from
    ``{type: [true positives, predicted, gold]}``."""
    per_type = {}
    for type_ in sorted(counts):
        tp, predicted, gold = counts[type_]
        precision, recall, f1 = _prf(tp, predicted, gold)
        per_type[type_] = {"precision": precision, "recall": recall, "f1": f1, "number": gold}
    tp, predicted, gold = (sum(c[slot] for c in counts.values()) for slot in range(3))
    return (per_type, *_prf(tp, predicted, gold), gold)


def _check_lengths(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], offset: int) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"got {len(gold)} gold sentences but {len(pred)} predicted ones")
    for k, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(
                f"sentence {offset + k} (#{k} of this batch): {len(gold_tags)} gold tags but "
                f"{len(pred_tags)} predicted; every word needs exactly one prediction"
            )


class EntityScorer:
    """Streaming entity scores: feed batches of sentences with :meth:`update`, read :meth:`result`.

    >>> scorer = EntityScorer()
    >>> scorer.update([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])
    >>> scorer.update([["B-LOC", "O"]], [["B-ORG", "O"]])
    >>> result = scorer.result()
    >>> result["precision"], result["recall"], result["f1"], result["accuracy"], result["number"]
    (0.5, 0.5, 0.5, 0.8, 2)
    >>> result["per_type"]["LOC"]
    {'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'number': 1}
    """

    def __init__(self) -> None:
        self._gold = EntityDecoder()
        self._pred = EntityDecoder()
        self._counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
        self.sentences = 0
        self.words = 0
        self.correct_words = 0

    def _count(self, type_: str, slot: int) -> None:
        counts = self._counts.get(type_)
        if counts is None:
            counts = self._counts[type_] = [0, 0, 0]
        counts[slot] += 1

    def _step(self, gold_tag: str, pred_tag: str) -> None:
        gold_span, pred_span = self._gold.step(gold_tag), self._pred.step(pred_tag)
        # Both decoders read the same positions, so spans closing now end at the same word.
        if gold_span is not None:
            self._count(gold_span.type, 2)
        if pred_span is not None:
            self._count(pred_span.type, 1)
            if pred_span == gold_span:
                self._count(pred_span.type, 0)

    def update(self, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
        """Add a batch of sentences: gold tags and predicted tags, one per word.

        Raises:
            ValueError: The batch sizes differ or a sentence's tag counts differ (nothing is counted).
        """
        _check_lengths(gold, pred, self.sentences)
        for gold_tags, pred_tags in zip(gold, pred):
            for gold_tag, pred_tag in zip(gold_tags, pred_tags):
                self._step(gold_tag, pred_tag)
                self.correct_words += gold_tag == pred_tag
            self._step("O", "O")  # the sentence boundary seqeval inserts
            self.words += len(gold_tags)
        self.sentences += len(gold)

    def result(self) -> dict:
        """``{"precision", "recall", "f1", "accuracy", "number", "per_type": {type: {"precision",
        "recall", "f1", "number"}}}``: micro-averaged entity scores, token accuracy, gold entity count;
        types sorted by name, including types only predicted (``number`` 0)."""
        per_type, precision, recall, f1, gold = _summary(self._counts)
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": _ratio(self.correct_words, self.words),
            "number": gold,
            "per_type": per_type,
        }


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """:meth:`EntityScorer.result` of one batch.

    >>> score([["B-MISC", "I-MISC", "O"], ["B-PER", "O"]], [["B-MISC", "I-MISC", "O"], ["O", "O"]])["recall"]
    0.5
    """
    scorer = EntityScorer()
    scorer.update(gold, pred)
    return scorer.result()


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Share of words whose predicted tag equals the gold one (the POS / chunking headline);
    ``0.0`` when there are no words.

    Raises:
        ValueError: The sentence counts or a sentence's tag counts differ.

    >>> token_accuracy([["NOUN", "VERB"], ["DET"]], [["NOUN", "NOUN"], ["DET"]])
    0.6666666666666666
    """
    _check_lengths(gold, pred, 0)
    correct = sum(g == p for gold_tags, pred_tags in zip(gold, pred) for g, p in zip(gold_tags, pred_tags))
    return _ratio(correct, sum(len(tags) for tags in gold))


def flatten_metrics(result: dict, entity_level: bool = False, prefix: str = "") -> dict[str, float]:
    """Flat metric names exactly as upstream ``run_ner.py``'s ``compute_metrics`` returns them.

    Without ``entity_level``: ``precision recall f1 accuracy`` (overall). With it (upstream
    ``--return_entity_level_metrics``): ``{type}_precision {type}_recall {type}_f1 {type}_number`` per
    type, then ``overall_precision overall_recall overall_f1 overall_accuracy``. ``prefix`` is put in
    front of every name, as the Trainer does (``"eval_"``, ``"predict_"``).

    >>> result = score([["B-PER", "O"]], [["B-PER", "O"]])
    >>> flatten_metrics(result, prefix="eval_")
    {'eval_precision': 1.0, 'eval_recall': 1.0, 'eval_f1': 1.0, 'eval_accuracy': 1.0}
    >>> list(flatten_metrics(result, entity_level=True))
    ['PER_precision', 'PER_recall', 'PER_f1', 'PER_number', 'overall_precision', 'overall_recall', 'overall_f1', 'overall_accuracy']
    """
    overall = {key: result[key] for key in ("precision", "recall", "f1", "accuracy")}
    if not entity_level:
        return {f"{prefix}{key}": value for key, value in overall.items()}
    flat: dict[str, float] = {}
    for type_, scores in result["per_type"].items():
        for key in ("precision", "recall", "f1", "number"):
            flat[f"{prefix}{type_}_{key}"] = scores[key]
    for key, value in overall.items():
        flat[f"{prefix}overall_{key}"] = value
    return flat


# --------------------------------------------------------------------------------------------------
# Character spans: exact (start, end, label) matches, for data read as text + spans


class CharSpanScorer:
    """Streaming character-span scores: a predicted span counts when its ``(start, end, label)`` equals a
    gold one of the same document; feed one document (or sentence) at a time.

    The result has the shape of :meth:`EntityScorer.result` without ``accuracy``: ``precision``,
    ``recall``, ``f1``, ``number`` (gold spans) and ``per_type``.

    >>> scorer = CharSpanScorer()
    >>> scorer.update([(0, 13, "PER"), (22, 27, "LOC")], [(0, 13, "PER"), (22, 28, "LOC")])
    >>> result = scorer.result()
    >>> result["precision"], result["recall"], result["f1"], result["number"]
    (0.5, 0.5, 0.5, 2)
    >>> result["per_type"]["LOC"]
    {'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'number': 1}
    """

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # label -> [true positives, predicted, gold]

    def _add(self, label: str, slot: int, n: int = 1) -> None:
        self._counts.setdefault(label, [0, 0, 0])[slot] += n

    def update(self, gold: Iterable[tuple[int, int, str]], pred: Iterable[tuple[int, int, str]]) -> None:
        """Add one document's gold and predicted spans (duplicates count once)."""
        gold_set = {(int(s), int(e), str(label)) for s, e, label in gold}
        pred_set = {(int(s), int(e), str(label)) for s, e, label in pred}
        for _, _, label in gold_set:
            self._add(label, 2)
        for span in pred_set:
            self._add(span[2], 1)
            if span in gold_set:
                self._add(span[2], 0)

    def result(self) -> dict:
        per_type, precision, recall, f1, gold = _summary(self._counts)
        return {"precision": precision, "recall": recall, "f1": f1, "number": gold, "per_type": per_type}


def score_char_spans(gold: Iterable[Iterable[tuple[int, int, str]]],
                     pred: Iterable[Iterable[tuple[int, int, str]]]) -> dict:
    """:meth:`CharSpanScorer.result` of documents given as parallel lists of spans.

    >>> score_char_spans([[(0, 2, "ORG")], []], [[(0, 2, "ORG")], [(3, 5, "PER")]])["precision"]
    0.5
    """
    scorer = CharSpanScorer()
    for gold_spans, pred_spans in zip(gold, pred, strict=True):
        scorer.update(gold_spans, pred_spans)
    return scorer.result()


# --------------------------------------------------------------------------------------------------
# Error analysis: how each gold entity was (mis)predicted

OUTCOMES: tuple[str, ...] = ("exact", "wrong_type", "wrong_boundary", "wrong_type_and_boundary", "missed", "spurious")
NONE = "(none)"  # the matrix row of spurious entities and column of missed ones


@dataclass(frozen=True)
class EntityMatch:
    """What became of one gold entity, or one predicted entity that overlaps no gold one.

    Attributes:
        outcome: One of :data:`OUTCOMES`.
        gold: The gold entity (``None`` for ``spurious``).
        pred: The predicted entity it is compared with (``None`` for ``missed``).
    """

    outcome: str
    gold: Span | None
    pred: Span | None


def _overlap(a: Span, b: Span) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def match_entities(gold: Sequence[Span], pred: Sequence[Span]) -> list[EntityMatch]:
    """Compare the gold and predicted entities of one sentence.

    Each gold entity gets one outcome: ``exact`` (a predicted entity with its type and boundaries),
    ``wrong_type`` (same boundaries, other type), ``wrong_boundary`` (an overlapping prediction of its
    type), ``wrong_type_and_boundary`` (only overlapping predictions of other types) or ``missed`` (no
    overlap); the prediction with the largest overlap stands for it. Each predicted entity that
    overlaps no gold one is ``spurious``. Gold matches come in gold order, then spurious ones.

    >>> [m.outcome for m in match_entities([Span("PER", 0, 2), Span("LOC", 3, 4)], [Span("PER", 0, 1), Span("ORG", 5, 6)])]
    ['wrong_boundary', 'missed', 'spurious']
    """
    predicted = set(pred)
    matches: list[EntityMatch] = []
    for g in gold:
        if g in predicted:
            matches.append(EntityMatch("exact", g, g))
            continue
        overlapping = sorted((p for p in pred if _overlap(g, p) > 0), key=lambda p: -_overlap(g, p))
        same_bounds = next((p for p in overlapping if (p.start, p.end) == (g.start, g.end)), None)
        same_type = next((p for p in overlapping if p.type == g.type), None)
        if same_bounds is not None:
            matches.append(EntityMatch("wrong_type", g, same_bounds))
        elif same_type is not None:
            matches.append(EntityMatch("wrong_boundary", g, same_type))
        elif overlapping:
            matches.append(EntityMatch("wrong_type_and_boundary", g, overlapping[0]))
        else:
            matches.append(EntityMatch("missed", g, None))
    matches += [EntityMatch("spurious", None, p) for p in pred if not any(_overlap(g, p) > 0 for g in gold)]
    return matches


class EntityConfusion:
    """Streaming error analysis: outcome counts per type and a gold-type x predicted-type matrix.

    Entities are decoded exactly as :class:`EntityScorer` decodes them, so ``exact`` counts equal its
    true positives and the gold counts its ``number``.

    >>> confusion = EntityConfusion()
    >>> [m.outcome for m in confusion.update(["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O", "O"])]
    ['wrong_type', 'missed']
    >>> confusion.result()["matrix"]["PER"]
    {'ORG': 1}
    """

    def __init__(self) -> None:
        self._gold = EntityDecoder()
        self._pred = EntityDecoder()
        self._outcomes: dict[str, dict[str, int]] = {}
        self._matrix: dict[str, dict[str, int]] = {}
        self._gold_count: dict[str, int] = {}
        self._pred_count: dict[str, int] = {}

    @staticmethod
    def _spans(decoder: EntityDecoder, tags: Sequence[str]) -> list[Span]:
        start = decoder.position
        spans = [span for span in map(decoder.step, [*tags, "O"]) if span is not None]  # "O": the boundary
        return [Span(s.type, s.start - start, s.end - start) for s in spans]

    def update(self, gold_tags: Sequence[str], pred_tags: Sequence[str]) -> list[EntityMatch]:
        """Add one sentence; returns its matches (see :func:`match_entities`).

        Raises:
            ValueError: The tag counts differ.
        """
        _check_lengths([gold_tags], [pred_tags], 0)
        gold, pred = self._spans(self._gold, gold_tags), self._spans(self._pred, pred_tags)
        for span in gold:
            self._gold_count[span.type] = self._gold_count.get(span.type, 0) + 1
        for span in pred:
            self._pred_count[span.type] = self._pred_count.get(span.type, 0) + 1
        matches = match_entities(gold, pred)
        for match in matches:
            type_ = match.gold.type if match.gold is not None else match.pred.type  # type: ignore[union-attr]
            counts = self._outcomes.setdefault(type_, dict.fromkeys(OUTCOMES, 0))
            counts[match.outcome] += 1
            row = self._matrix.setdefault(match.gold.type if match.gold else NONE, {})
            column = match.pred.type if match.pred else NONE
            row[column] = row.get(column, 0) + 1
        return matches

    def result(self) -> dict:
        """``{"outcomes": {type: {outcome: n}}, "totals": {outcome: n}, "matrix": {gold type: {predicted
        type: n}}, "gold": {type: n}, "predicted": {type: n}}``. Outcomes are counted under the gold
        type, ``spurious`` under the predicted one; the matrix uses :data:`NONE` for missed (column)
        and spurious (row) entities. Types are sorted by name."""
        types = sorted(set(self._outcomes) | set(self._gold_count) | set(self._pred_count))
        outcomes = {t: dict(self._outcomes.get(t, dict.fromkeys(OUTCOMES, 0))) for t in types}
        rows = [t for t in sorted(self._matrix) if t != NONE] + ([NONE] if NONE in self._matrix else [])
        return {
            "outcomes": outcomes,
            "totals": {o: sum(counts[o] for counts in outcomes.values()) for o in OUTCOMES},
            "matrix": {row: dict(sorted(self._matrix[row].items())) for row in rows},
            "gold": {t: self._gold_count.get(t, 0) for t in types},
            "predicted": {t: self._pred_count.get(t, 0) for t in types},
        }
