"""Calibrated entity scores: temperature scaling of per-word label probabilities, and how well an
entity's score says how often it is right (expected calibration error, reliability, precision and
recall against a minimum score).

An entity's score is the mean probability of its words' predicted labels. Fine-tuned taggers are
over-confident: entities scored 0.99 are right much less often than 99% of the time. One temperature
``T`` (or one per label) divides the word log-probabilities before the softmax, ``softmax(log_p / T)``;
``T > 1`` softens. Tags are decoded from the raw scores and never change: only scores do.

The temperature is fitted on a labelled split (``tagtune evaluate MODEL DEV --calibrate``, or at the
end of training) and saved as ``calibration.json`` in the model directory, where
:func:`tagtune.checkpoint.load_checkpoint` finds it for every backend. By default it minimises the
log-loss of the *entity* scores against whether each predicted entity is exactly right, because that
is what a user thresholds; ``objective="word"`` minimises the negative log-likelihood of the gold
label of every word instead (the classic recipe, dominated by the many easy ``O`` words).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tagtune.corpus import Example
from tagtune.errors import ConfigError, ModelLoadError
from tagtune.fileio import atomic_write_json
from tagtune.inference import DEFAULT_MAX_TOKENS, Forward, log_softmax
from tagtune.labels import get_entities

logger = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FORMAT_VERSION = 1
Objective = Literal["entity", "word"]
OBJECTIVES: tuple[str, ...] = ("entity", "word")
# Temperatures outside this range are a sign of a broken fit (or a degenerate split), not calibration.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
BINS = 10
# Minimum scores of the precision/recall table (abstention): keep entities scored at least S.
THRESHOLDS: tuple[float, ...] = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Sentences encoded and run at once, as evaluation does: bounds memory whatever the size of the split.
CHUNK_SENTENCES = 2000


def scored_spans(tags: Sequence[str], scheme: str) -> list[tuple[str, int, int]]:
    """The entities a tagger reports for ``tags``, as ``(type, first word, end word)``: every word for
    tags without a scheme (part of speech), else the entities as seqeval reads them.

    >>> scored_spans(["B-PER", "I-PER", "O", "B-LOC"], "IOB2")
    [('PER', 0, 2), ('LOC', 3, 4)]
    >>> scored_spans(["NOUN", "O", "VERB"], "none")
    [('NOUN', 0, 1), ('VERB', 2, 3)]
    """
    if scheme == "none":
        return [(tag, w, w + 1) for w, tag in enumerate(tags) if tag != "O"]
    return [(s.type, s.start, s.end) for s in get_entities(tags)]


@dataclass(frozen=True)
class Calibration:
    """Temperatures for a model's labels; :meth:`apply` calibrates log-probabilities.

    Attributes:
        labels: The model's labels, in id order (a calibration of another model is refused on load).
        temperatures: One temperature per label (all equal unless fitted per label).
        per_label: Whether the temperatures were fitted per label.
        objective: ``entity`` or ``word`` (see the module's documentation).
        fitted_on: What the fit saw: data, sentences, entities, ECE before and after.
    """

    labels: tuple[str, ...]
    temperatures: tuple[float, ...]
    per_label: bool = False
    objective: str = "entity"
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        assert len(self.temperatures) == len(self.labels), "one temperature per label"

    @property
    def temperature(self) -> float:
        """The single temperature (per label: their geometric mean, for display)."""
        return float(np.exp(np.mean(np.log(self.temperatures))))

    def apply(self, log_probs: np.ndarray) -> np.ndarray:
        """Calibrated log-probabilities ``log_softmax(log_probs / T)`` of ``[..., L]`` log-probabilities.

        >>> cal = Calibration(("O", "B-X"), (2.0, 2.0))
        >>> np.round(np.exp(cal.apply(np.log(np.array([[0.9, 0.1]])))), 3).tolist()
        [[0.75, 0.25]]
        """
        return log_softmax(log_probs / np.asarray(self.temperatures, dtype=log_probs.dtype))

    def chosen(self, log_probs: np.ndarray, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Calibrated probability of label ``ids[w]`` for each word ``w`` of ``[words, L]`` log-probs."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.exp(self.apply(log_probs)[np.arange(len(ids)), ids])

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION, "method": "temperature", "objective": self.objective,
            "temperature": round(self.temperature, 6),
            "label_temperatures": ({label: round(t, 6) for label, t in zip(self.labels, self.temperatures)}
                                   if self.per_label else None),
            "labels": list(self.labels), "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = CALIBRATION_FILE) -> Calibration:
        """Read :meth:`as_dict`'s form.

        Raises:
            ModelLoadError: Not a calibration tagtune wrote, or temperatures that are not positive numbers.
        """
        try:
            labels = tuple(str(label) for label in data["labels"])
            per_label = data.get("label_temperatures") is not None
            temperatures = (tuple(float(data["label_temperatures"][label]) for label in labels) if per_label
                            else (float(data["temperature"]),) * len(labels))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise ModelLoadError(f"'{where}' is not a calibration written by tagtune (expected labels and "
                                 "temperature); delete it or fit it again with tagtune evaluate MODEL DATA "
                                 "--calibrate") from None
        if not all(math.isfinite(t) and t > 0 for t in temperatures):
            raise ModelLoadError(f"'{where}': temperatures must be positive numbers, got {list(temperatures)}; "
                                 "fit it again with tagtune evaluate MODEL DATA --calibrate")
        return cls(labels, temperatures, per_label, str(data.get("objective", "entity")),
                   dict(data.get("fitted_on") or {}))


def save_calibration(model_dir: str | Path, calibration: Calibration) -> Path:
    """Write ``calibration.json`` into ``model_dir`` atomically; returns its path."""
    path = Path(model_dir) / CALIBRATION_FILE
    atomic_write_json(path, calibration.as_dict())
    return path


def load_calibration(model_dir: str | Path, labels: Sequence[str]) -> Calibration | None:
    """The calibration saved in ``model_dir`` (``None`` when there is none).

    Raises:
        ModelLoadError: The file cannot be read, or it was fitted for other labels than ``labels``.
    """
    import json

    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot read '{path}': {error}") from None
    calibration = Calibration.from_dict(data, str(path))
    if list(calibration.labels) != list(labels):
        raise ModelLoadError(f"'{path}' was fitted for the labels {list(calibration.labels)}, not this model's "
                             f"{list(labels)}; fit it again with tagtune evaluate MODEL DATA --calibrate")
    return calibration


# --------------------------------------------------------------------------------------------------
# Fitting


def _bounded(log_t: torch.Tensor) -> torch.Tensor:
    return log_t.clamp(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE))


def _minimise(loss: Callable[[torch.Tensor], torch.Tensor], size: int, start: float = 0.0) -> np.ndarray:
    """Temperatures ``exp(log_t)`` minimising ``loss(log_t)``: a grid over one shared temperature first
    (the loss need not be convex), then L-BFGS from the best point for ``size`` temperatures."""
    grid = np.linspace(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE), 61)
    with torch.no_grad():
        values = [float(loss(torch.full((size,), g, dtype=torch.float64))) for g in grid]
    best = float(grid[int(np.nanargmin(values))]) if np.isfinite(values).any() else start
    log_t = torch.full((size,), best, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = loss(_bounded(log_t))
        value.backward()
        return value

    optimiser.step(closure)
    return np.exp(_bounded(log_t.detach()).numpy())


def fit_word_temperatures(log_probs: np.ndarray, targets: np.ndarray, *, per_label: bool = False) -> np.ndarray:
    """Temperatures minimising the mean negative log-likelihood of ``targets`` (gold label ids) under
    ``softmax(log_probs / T)``; ``[L]`` values (all equal unless ``per_label``)."""
    if len(targets) == 0:
        raise ConfigError("calibration needs labelled words; the data has none")
    scores = torch.as_tensor(np.asarray(log_probs, dtype=np.float64))
    gold = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    labels = scores.shape[1]

    def loss(log_t: torch.Tensor) -> torch.Tensor:
        t = log_t.exp().expand(labels) if log_t.numel() == 1 else log_t.exp()
        return torch.nn.functional.cross_entropy(scores / t, gold)

    temperatures = _minimise(loss, labels if per_label else 1)
    return np.broadcast_to(temperatures, (labels,)).copy()


def fit_entity_temperatures(log_probs: np.ndarray, chosen: np.ndarray, entity: np.ndarray, correct: np.ndarray, *,
                            per_label: bool = False) -> np.ndarray:
    """Temperatures minimising the log-loss of entity scores against entity correctness.

    Args:
        log_probs: ``[W, L]`` raw log-probabilities of the words inside predicted entities.
        chosen: ``[W]`` the predicted label id of each of those words.
        entity: ``[W]`` the entity (``0..E-1``) each word belongs to.
        correct: ``[E]`` whether each predicted entity is exactly a gold one.
    """
    if len(correct) == 0:
        raise ConfigError("calibration of entity scores needs predicted entities; the model predicts none on "
                          "this data (use --calibrate_objective word, or more data)")
    scores = torch.as_tensor(np.asarray(log_probs, dtype=np.float64))
    ids = torch.as_tensor(np.asarray(chosen, dtype=np.int64))
    owner = torch.as_tensor(np.asarray(entity, dtype=np.int64))
    target = torch.as_tensor(np.asarray(correct, dtype=np.float64))
    sizes = torch.zeros(len(target), dtype=torch.float64).index_add_(0, owner, torch.ones_like(owner, dtype=torch.float64))
    labels = scores.shape[1]
    rows = torch.arange(len(ids))

    def loss(log_t: torch.Tensor) -> torch.Tensor:
        t = log_t.exp().expand(labels) if log_t.numel() == 1 else log_t.exp()
        word = torch.log_softmax(scores / t, dim=-1)[rows, ids].exp()
        mean = torch.zeros(len(target), dtype=torch.float64).index_add(0, owner, word) / sizes
        mean = mean.clamp(1e-7, 1 - 1e-7)
        return torch.nn.functional.binary_cross_entropy(mean, target)

    temperatures = _minimise(loss, labels if per_label else 1)
    return np.broadcast_to(temperatures, (labels,)).copy()


# --------------------------------------------------------------------------------------------------
# Measuring


def expected_calibration_error(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                               bins: int = BINS) -> float:
    """Mean gap between confidence and accuracy over ``bins`` equal-width score bins, weighted by count.

    >>> round(expected_calibration_error([0.9, 0.9, 0.9, 0.9], [True, True, True, False]), 6)
    0.15
    """
    total = len(scores)
    return sum(n * abs(conf - acc) for _, n, conf, acc in _bins(scores, correct, bins)) / total if total else 0.0


def reliability(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                bins: int = BINS) -> list[dict[str, float]]:
    """The non-empty bins of a reliability diagram: ``low``, ``high``, ``count``, mean ``confidence`` and
    ``accuracy`` of the scores falling in ``[low, high)`` (the last bin includes 1).

    >>> reliability([0.05, 0.95, 0.97], [False, True, False])[1]
    {'low': 0.9, 'high': 1.0, 'count': 2, 'confidence': 0.96, 'accuracy': 0.5}
    """
    return [{"low": b / bins, "high": (b + 1) / bins, "count": n, "confidence": round(conf, 6),
             "accuracy": round(acc, 6)} for b, n, conf, acc in _bins(scores, correct, bins)]


def _bins(scores, correct, bins: int) -> Iterator[tuple[int, int, float, float]]:
    """``(bin, count, mean score, accuracy)`` of each non-empty bin."""
    values = np.asarray(scores, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    which = np.minimum((values * bins).astype(np.int64), bins - 1)
    for b in range(bins):
        inside = which == b
        if inside.any():
            yield b, int(inside.sum()), float(values[inside].mean()), float(hits[inside].mean())


def threshold_table(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, gold: int,
                    thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """Precision, recall and F1 of the entities kept by ``--min_score S``, for each ``S``.

    >>> [row["recall"] for row in threshold_table([0.4, 0.9], [False, True], gold=2, thresholds=(0.0, 0.5))]
    [0.5, 0.5]
    """
    values = np.asarray(scores, dtype=np.float64)
    hits = np.asarray(correct, dtype=bool)
    rows = []
    for s in thresholds:
        kept = values >= s
        tp, n = int((hits & kept).sum()), int(kept.sum())
        precision = tp / n if n else 0.0
        recall = tp / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"min_score": s, "kept": n, "precision": round(precision, 6), "recall": round(recall, 6),
                     "f1": round(f1, 6)})
    return rows


# --------------------------------------------------------------------------------------------------
# Collecting the scores of a labelled split


def iter_scored(forward: Forward, aligner, examples: Sequence[Example], decoder, *, batch_size: int = 32,
                max_tokens: int | None = DEFAULT_MAX_TOKENS, device: torch.device | str = "cpu",
                autocast_dtype: torch.dtype | None = None, description: str = "scoring",
                ) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """``(example index, predicted tags, raw word log-probabilities)`` for every example, with the
    streaming inference and document-aligned chunks of evaluation (in completion order per chunk)."""
    from tagtune.evaluate import document_chunks, iter_predicted_tags
    from tagtune.progress import progress_bar

    with progress_bar(total=len(examples), desc=description, unit="sentence") as bar:
        for start, stop in document_chunks(examples, CHUNK_SENTENCES):
            encoding = aligner.encode(examples[start:stop], labelled=False)
            for index, tags, scores in iter_predicted_tags(forward, encoding, decoder, pad_id=aligner.pad_id,
                                                           batch_size=batch_size, max_tokens=max_tokens,
                                                           device=device, autocast_dtype=autocast_dtype):
                yield start + index, tags, scores
                bar.update(1)


class EntityScores:
    """The raw word scores of a labelled split, gathered example by example, to fit a calibration and to
    measure calibration and abstention (:meth:`summary`).

    Keeps every word's log-probabilities when ``keep_words`` (needed for ``objective="word"``), else only
    those of the words inside predicted entities.
    """

    def __init__(self, labels: Sequence[str], scheme: str, *, keep_words: bool = False):
        self.labels = list(labels)
        self.scheme = scheme
        self.keep_words = keep_words
        self._ids = {label: i for i, label in enumerate(self.labels)}
        self._rows: list[np.ndarray] = []  # entity words: [w, L]
        self._chosen: list[np.ndarray] = []
        self._owner: list[np.ndarray] = []
        self.correct: list[bool] = []
        self.types: list[str] = []
        self.gold_entities = 0
        self.sentences = 0
        self.unknown_words = 0
        self._words: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []

    def add(self, scores: np.ndarray, tags: Sequence[str], gold: Sequence[str]) -> None:
        """One example: its raw ``[words, L]`` log-probabilities, predicted tags and gold tags."""
        self.sentences += 1
        gold_spans = set(scored_spans(gold, self.scheme))
        self.gold_entities += len(gold_spans)
        ids = np.fromiter((self._ids[t] for t in tags), dtype=np.int64, count=len(tags))
        for label, first, last in scored_spans(tags, self.scheme):
            self._owner.append(np.full(last - first, len(self.correct), dtype=np.int64))
            self._rows.append(scores[first:last])
            self._chosen.append(ids[first:last])
            self.correct.append((label, first, last) in gold_spans)
            self.types.append(label)
        if self.keep_words:
            target = np.fromiter((self._ids.get(t, -1) for t in gold), dtype=np.int64, count=len(gold))
            known = target >= 0
            self.unknown_words += int((~known).sum())
            self._words.append(scores[known])
            self._targets.append(target[known])

    def _entity_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width = len(self.labels)
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, width), dtype=np.float32)
        chosen = np.concatenate(self._chosen) if self._chosen else np.zeros(0, dtype=np.int64)
        owner = np.concatenate(self._owner) if self._owner else np.zeros(0, dtype=np.int64)
        return rows, chosen, owner

    def scores(self, calibration: Calibration | None = None) -> np.ndarray:
        """Each predicted entity's score (mean probability of its words' labels), calibrated or not."""
        rows, chosen, owner = self._entity_arrays()
        if calibration is not None:
            word = calibration.chosen(rows, chosen)
        else:
            word = np.exp(rows[np.arange(len(chosen)), chosen]) if len(chosen) else np.zeros(0)
        sums = np.bincount(owner, weights=word, minlength=len(self.correct))
        sizes = np.bincount(owner, minlength=len(self.correct))
        return sums / np.maximum(sizes, 1)

    def fit(self, *, per_label: bool = False, objective: Objective = "entity", data: str = "") -> Calibration:
        """The calibration fitted on these scores, with its ECE before and after in ``fitted_on``.

        Raises:
            ConfigError: An unknown objective, or nothing to fit on.
        """
        if objective not in OBJECTIVES:
            raise ConfigError(f"--calibrate_objective '{objective}' is not one of {', '.join(OBJECTIVES)}")
        if objective == "word":
            if not self.keep_words:
                raise ValueError("objective 'word' needs EntityScores(keep_words=True)")
            words = np.concatenate(self._words) if self._words else np.zeros((0, len(self.labels)))
            targets = np.concatenate(self._targets) if self._targets else np.zeros(0, dtype=np.int64)
            temperatures = fit_word_temperatures(words, targets, per_label=per_label)
        else:
            rows, chosen, owner = self._entity_arrays()
            temperatures = fit_entity_temperatures(rows, chosen, owner, np.asarray(self.correct), per_label=per_label)
        calibration = Calibration(tuple(self.labels), tuple(float(t) for t in temperatures), per_label, objective)
        fitted_on = {"data": data, "sentences": self.sentences, "entities": len(self.correct),
                     "ece_before": round(expected_calibration_error(self.scores(), self.correct), 6),
                     "ece_after": round(expected_calibration_error(self.scores(calibration), self.correct), 6),
                     "bins": BINS}
        return Calibration(calibration.labels, calibration.temperatures, per_label, objective, fitted_on)

    def summary(self, calibration: Calibration | None = None) -> dict[str, Any]:
        """ECE and reliability bins of the raw scores (``before``) and, with ``calibration``, of the
        calibrated ones (``after``); the precision/recall table against a minimum score uses the
        scores a tagger reports (calibrated when there is a calibration)."""
        raw = self.scores()
        out: dict[str, Any] = {"entities": len(self.correct), "gold_entities": self.gold_entities,
                               "before": {"ece": round(expected_calibration_error(raw, self.correct), 6),
                                          "reliability": reliability(raw, self.correct)}}
        used = raw
        if calibration is not None:
            used = self.scores(calibration)
            out["after"] = {"ece": round(expected_calibration_error(used, self.correct), 6),
                            "reliability": reliability(used, self.correct)}
            out["temperature"] = round(calibration.temperature, 6)
        out["thresholds"] = threshold_table(used, self.correct, self.gold_entities)
        return out


def collect_entity_scores(forward: Forward, aligner, examples: Sequence[Example], decoder, scheme: str, *,
                          keep_words: bool = False,
                          on_example: Callable[[int, list[str], np.ndarray], None] | None = None,
                          **options: Any) -> EntityScores:
    """:class:`EntityScores` of labelled ``examples`` tagged with ``decoder`` (``options``: batch size,
    device... of :func:`iter_scored`); ``on_example(index, tags, raw log-probabilities)`` sees every
    example in input order (the label audit shares the pass)."""
    collected = EntityScores(decoder.labels, scheme, keep_words=keep_words)
    pending: dict[int, tuple[list[str], np.ndarray]] = {}
    position = 0
    # Added in input order, so that a fit does not depend on batch composition.
    for index, tags, scores in iter_scored(forward, aligner, examples, decoder, **options):
        pending[index] = (tags, scores)
        while position in pending:
            tags, scores = pending.pop(position)
            if on_example is not None:
                on_example(position, tags, scores)
            gold = examples[position].tags
            if gold is not None:
                collected.add(scores, tags, gold)
            position += 1
    return collected


def fit_calibration(forward: Forward, aligner, examples: Sequence[Example], decoder, scheme: str, *,
                    per_label: bool = False, objective: Objective = "entity", data: str = "validation",
                    **options: Any) -> tuple[Calibration, EntityScores]:
    """Fit a calibration on labelled ``examples`` (the end-of-training hook and ``tagtune evaluate
    --calibrate``); save it with :func:`save_calibration`. Returns the calibration and the scores it
    was fitted on (for :meth:`EntityScores.summary`).

    Raises:
        ConfigError: An unknown objective, no labelled examples or no predicted entity.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"--calibrate_objective '{objective}' is not one of {', '.join(OBJECTIVES)}")
    labelled = [e for e in examples if e.tags is not None]
    if not labelled:
        raise ConfigError(f"{data}: calibration needs labelled data; these sentences have no tags")
    collected = collect_entity_scores(forward, aligner, labelled, decoder, scheme, keep_words=objective == "word",
                                      **options)
    calibration = collected.fit(per_label=per_label, objective=objective, data=data)
    logger.info("calibration on %s: temperature %.3f, entity ECE %.4f -> %.4f (%d entities)", data,
                calibration.temperature, calibration.fitted_on["ece_before"], calibration.fitted_on["ece_after"],
                len(collected.correct))
    return calibration, collected


def calibrate_trained_model(model: torch.nn.Module, aligner, validation: Sequence[Example], decoder, scheme: str, *,
                            test: Sequence[Example] | None = None, per_label: bool = False,
                            objective: Objective = "entity", batch_size: int = 32,
                            device: torch.device | str = "cpu") -> tuple[Calibration | None, dict[str, Any] | None]:
    """The end-of-training hook (main process, the unwrapped model): fit on ``validation``, then measure
    the scores on ``test`` when it is labelled (else on ``validation``, optimistic).

    Returns ``(calibration, summary)`` (:meth:`EntityScores.summary`, for the report), or ``(None, None)``
    with a warning when no calibration can be fitted (no labelled validation data, no predicted entity):
    a finished training run is never lost to it. Save the calibration with :func:`save_calibration`
    beside the weights.
    """
    from tagtune.inference import model_forward

    was_training = model.training
    model.eval()
    try:
        forward = model_forward(model)
        try:
            calibration, scores = fit_calibration(forward, aligner, validation, decoder, scheme, per_label=per_label,
                                                  objective=objective, data="validation", batch_size=batch_size,
                                                  device=device)
        except ConfigError as error:
            logger.warning("no calibration of entity scores: %s", error)
            return None, None
        if test and all(e.tags is not None for e in test):
            scores = collect_entity_scores(forward, aligner, test, decoder, scheme, batch_size=batch_size, device=device)
    finally:
        model.train(was_training)
    return calibration, scores.summary(calibration)
