"""Label audit: the gold spans a model most confidently contradicts, as likely annotation errors.

Word-level probabilities come from the streaming inference of evaluation (calibrated when the model
has a ``calibration.json``). Which words are probably mislabelled, and how likely, is decided by
confident learning, with cleanlab's ``token_classification`` module (``pip install 'tagtune[audit]'``):
``find_label_issues`` flags words whose gold label the model contradicts beyond its per-label
confidence thresholds, ``get_label_quality_scores`` gives each word's label quality (the probability
of its gold label) and each sentence's (its lowest word).

Flagged words become suspect *spans* by comparing the gold entities of the sentence with the model's
(:func:`tagtune.metrics.match_entities`), named from the annotation's side:

- ``wrong_type``: same words, another type suggested;
- ``wrong_boundary``: an overlapping span of the same type suggested;
- ``wrong_type_and_boundary``: only overlapping spans of other types suggested;
- ``missing_entity``: the model finds an entity where the gold has none;
- ``spurious_entity``: the gold has an entity where the model finds none.

A suspect's ``score`` is ``1 -`` the lowest label quality among its words: the model's probability that
the gold label of the most contradicted word is wrong. A model audits best data it was not trained on;
on its own training data it has learned the errors too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagtune.calibration import Calibration, iter_scored, scored_spans
from tagtune.config import DataConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError
from tagtune.labels import Span
from tagtune.metrics import match_entities
from tagtune.spans import SpanConfig

logger = logging.getLogger(__name__)

KINDS = {"wrong_type": "wrong_type", "wrong_boundary": "wrong_boundary",
         "wrong_type_and_boundary": "wrong_type_and_boundary", "spurious": "missing_entity", "missed": "spurious_entity"}
_INSTALL = "the label audit needs cleanlab: pip install 'tagtune[audit]' (or pip install cleanlab)"


def require_cleanlab() -> None:
    """Raises :class:`ConfigError` with the install line when cleanlab is not installed."""
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise ConfigError(_INSTALL) from None


@dataclass(frozen=True)
class Suspect:
    """One span whose gold labels the model contradicts.

    Attributes:
        kind: See the module's documentation.
        score: ``1 -`` the lowest label quality of its words (higher: more likely an annotation error).
        split / file: Where the sentence was read.
        where: ``file:line`` of the span's first word (CoNLL), else the sentence's place and the word
            (``file:line word m``, ``file record #n word m``).
        line: The line of the span's first word (CoNLL column files), else of the sentence's record
            (JSON lines, CoNLL-U); ``None`` when the data has no lines (a JSON array, a hub data set).
        sentence: The sentence's index in its split; ``sentence_score`` cleanlab's sentence quality.
        tokens: The sentence's words.
        gold / suggested: The gold span and the model's (``None`` for a missing / spurious entity).
        suggested_score: The model's entity score of its suggestion.
        offsets: Character offsets of the gold and suggested spans in their document, for span data
            (JSON spans, Label Studio, brat ...): ``{"gold": [start, end], "suggested": [start, end]}``.
    """

    kind: str
    score: float
    split: str
    file: str
    where: str
    line: int | None
    sentence: int
    sentence_id: str
    sentence_score: float
    tokens: tuple[str, ...]
    gold: Span | None
    suggested: Span | None
    suggested_score: float | None = None
    offsets: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON lines record: one per suspect span."""
        def span(s: Span | None, name: str) -> dict[str, Any] | None:
            if s is None:
                return None
            out = {"type": s.type, "start": s.start, "end": s.end, "text": " ".join(self.tokens[s.start:s.end])}
            if name in self.offsets:
                out["char_start"], out["char_end"] = self.offsets[name]
            if name == "suggested" and self.suggested_score is not None:
                out["score"] = round(self.suggested_score, 6)
            return out

        return {"kind": self.kind, "score": round(self.score, 6), "where": self.where, "file": self.file,
                "line": self.line, "split": self.split, "sentence": self.sentence, "id": self.sentence_id,
                "sentence_score": round(self.sentence_score, 6), "gold": span(self.gold, "gold"),
                "suggested": span(self.suggested, "suggested"), "text": " ".join(self.tokens)}

    def describe(self) -> str:
        """``PER 'John Smith'`` -> ``ORG 'John Smith'`` style, for tables."""
        def text(s: Span | None) -> str:
            return "-" if s is None else f"{s.type} '{' '.join(self.tokens[s.start:s.end])}'"

        return f"{text(self.gold)} -> {text(self.suggested)}"


@dataclass
class Audit:
    """Suspects of one or more splits, most likely errors first.

    Attributes:
        suspects: The suspect spans, by descending score.
        sentences: Sentences audited; ``skipped`` those with tags the model does not know (counted).
        flagged_words: Words cleanlab flagged.
        unknown_tags: Tags of the data the model does not know.
    """

    suspects: list[Suspect] = field(default_factory=list)
    sentences: int = 0
    skipped: int = 0
    flagged_words: int = 0
    unknown_tags: set[str] = field(default_factory=set)

    def extend(self, other: Audit) -> None:
        self.suspects = sorted([*self.suspects, *other.suspects], key=_rank)
        self.sentences += other.sentences
        self.skipped += other.skipped
        self.flagged_words += other.flagged_words
        self.unknown_tags |= other.unknown_tags

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for suspect in self.suspects:
            kinds[suspect.kind] = kinds.get(suspect.kind, 0) + 1
        return {"sentences": self.sentences, "skipped_sentences": self.skipped, "flagged_words": self.flagged_words,
                "suspects": len(self.suspects), "kinds": kinds, "unknown_tags": sorted(self.unknown_tags)}


def _rank(suspect: Suspect) -> tuple:
    span = suspect.gold or suspect.suggested
    return (-suspect.score, suspect.split, suspect.sentence, span.start if span else 0, suspect.kind)


def find_suspects(examples: Sequence[Example], gold_ids: Sequence[Sequence[int]], predicted: Sequence[Sequence[str]],
                  probabilities: Sequence[np.ndarray], labels: Sequence[str], scheme: str, *, split: str = "",
                  file: str = "", fmt: str = "", indices: Sequence[int] | None = None) -> tuple[list[Suspect], int]:
    """The suspect spans of labelled sentences, given the model's word probabilities and tags.

    Args:
        examples: The sentences (``tags`` are the gold labels).
        gold_ids: Their gold labels as ids into ``labels``.
        predicted: The model's decoded tags (the suggestion).
        probabilities: ``[words, L]`` probabilities per sentence (rows sum to 1).
        indices: The sentences' indices in their split (default: ``0..``).

    Returns:
        The suspects (most likely errors first) and the number of words cleanlab flagged.
    """
    from cleanlab.token_classification.filter import find_label_issues
    from cleanlab.token_classification.rank import get_label_quality_scores

    if not examples:
        return [], 0
    gold_lists = [list(map(int, ids)) for ids in gold_ids]
    probs = [np.asarray(p, dtype=np.float64) for p in probabilities]
    flagged = {(int(i), int(j)) for i, j in find_label_issues(gold_lists, probs)}
    sentence_scores, word_scores = get_label_quality_scores(gold_lists, probs)
    suspects: list[Suspect] = []
    for k, example in enumerate(examples):
        if not any(i == k for i, _ in flagged):
            continue
        quality = np.asarray(word_scores[k], dtype=np.float64)
        tags = list(predicted[k])
        gold_spans = [Span(*s) for s in scored_spans(list(example.tags or ()), scheme)]
        pred_spans = [Span(*s) for s in scored_spans(tags, scheme)]
        chosen = probs[k][np.arange(len(tags)), [labels.index(t) for t in tags]] if tags else np.zeros(0)
        for match in match_entities(gold_spans, pred_spans):
            if match.outcome == "exact":
                continue
            words = _words(match.gold) | _words(match.pred)
            if not any((k, w) in flagged for w in words):
                continue
            first = min(words)
            suspects.append(Suspect(
                kind=KINDS[match.outcome], score=float(1.0 - quality[sorted(words)].min()), split=split, file=file,
                where=_place(example, fmt, first), line=_line(example, fmt, first),
                sentence=indices[k] if indices is not None else k, sentence_id=example.id,
                sentence_score=float(sentence_scores[k]), tokens=example.tokens, gold=match.gold,
                suggested=match.pred,
                suggested_score=float(chosen[match.pred.start:match.pred.end].mean()) if match.pred else None,
                offsets=_offsets(example, match.gold, match.pred),
            ))
    return sorted(suspects, key=_rank), len(flagged)


def _words(span: Span | None) -> set[int]:
    return set() if span is None else set(range(span.start, span.end))


def _place(example: Example, fmt: str, word: int) -> str:
    from tagtune.doctor import word_place

    return word_place(example, fmt, word)


def _line(example: Example, fmt: str, word: int) -> int | None:
    """The line of ``word`` (CoNLL column files: one word per line), else of the sentence's record."""
    _, _, line = example.origin.rpartition(":")
    if not line.isdigit():
        return None
    return int(line) + word if fmt == "conll" else int(line)


def _offsets(example: Example, gold: Span | None, suggested: Span | None) -> dict[str, list[int]]:
    """Character offsets in the source document of span data (examples with ``offsets``)."""
    offsets = getattr(example, "offsets", None)
    if not offsets:
        return {}
    base = getattr(example, "text_start", 0)
    return {name: [base + offsets[s.start][0], base + offsets[s.end - 1][1]]
            for name, s in (("gold", gold), ("suggested", suggested)) if s is not None}


def auditable(examples: Sequence[Example], labels: Sequence[str]) -> tuple[list[int], set[str]]:
    """Indices of the labelled examples whose tags are all among ``labels``, and the unknown tags."""
    known = set(labels)
    kept: list[int] = []
    unknown: set[str] = set()
    for index, example in enumerate(examples):
        missing = {t for t in example.tags or () if t not in known}
        unknown |= missing
        if example.tags is not None and not missing:
            kept.append(index)
    return kept, unknown


def audit_scored(examples: Sequence[Example], predicted: Sequence[Sequence[str] | None],
                 log_probs: Sequence[np.ndarray | None], labels: Sequence[str], scheme: str, *,
                 calibration: Calibration | None = None, split: str = "", file: str = "", fmt: str = "") -> Audit:
    """Audit labelled ``examples`` from the model's tags and raw word log-probabilities (one entry per
    example, ``None`` for those :func:`auditable` leaves out); the probabilities are the calibrated ones
    when ``calibration`` is given.

    Raises:
        ConfigError: cleanlab is not installed.
    """
    require_cleanlab()
    labels = list(labels)
    kept, unknown = auditable(examples, labels)
    audit = Audit(sentences=len(kept), skipped=len(examples) - len(kept), unknown_tags=unknown)
    if unknown:
        logger.warning("%s: %d sentence(s) with tags the model does not know (%s) are not audited", file or split,
                       audit.skipped, ", ".join(sorted(unknown)))
    ids = {label: i for i, label in enumerate(labels)}
    chosen = [examples[i] for i in kept]
    probabilities = [np.exp(calibration.apply(log_probs[i]) if calibration is not None else log_probs[i])  # type: ignore[arg-type]
                     for i in kept]
    gold_ids = [[ids[t] for t in e.tags] for e in chosen]  # type: ignore[union-attr]
    audit.suspects, audit.flagged_words = find_suspects(
        chosen, gold_ids, [predicted[i] for i in kept], probabilities, labels, scheme,  # type: ignore[misc]
        split=split, file=file, fmt=fmt, indices=kept)
    return audit


def audit_examples(forward, aligner, examples: Sequence[Example], decoder, scheme: str, *,
                   calibration: Calibration | None = None, split: str = "", file: str = "", fmt: str = "",
                   **options: Any) -> Audit:
    """Audit labelled ``examples`` with a model: tag them as evaluation does, then :func:`audit_scored`.
    Sentences with a tag the model does not know are skipped (counted). ``options``: batch size,
    device ... of :func:`tagtune.calibration.iter_scored`.

    Raises:
        ConfigError: cleanlab is not installed.
    """
    require_cleanlab()
    kept, _ = auditable(examples, decoder.labels)
    predicted: list[list[str] | None] = [None] * len(examples)
    log_probs: list[np.ndarray | None] = [None] * len(examples)
    for index, tags, scores in iter_scored(forward, aligner, [examples[i] for i in kept], decoder,
                                           description="auditing", **options):
        predicted[kept[index]], log_probs[kept[index]] = tags, scores
    return audit_scored(examples, predicted, log_probs, decoder.labels, scheme, calibration=calibration, split=split,
                        file=file, fmt=fmt)


def audit_files(model: str | Path, files: Mapping[str, Path], cfg: DataConfig = DataConfig(), *,
                spans: SpanConfig | None = None, batch_size: int = 32, device: str = "cpu",
                allow_pickle: bool = False) -> Audit:
    """Audit the labelled files ``{split: path}`` (as :func:`tagtune.doctor.resolve_inputs` gives them)
    with the model at ``model`` (a model directory or an ONNX export; its calibration included).

    Tags are read as evaluation reads them (IOB1/IO converted to IOB2, invalid sequences repaired).

    Raises:
        ConfigError: cleanlab is not installed.
        ModelLoadError: ``model`` is not a tagger.
        TagtuneError: A file cannot be read.
    """
    from tagtune.checkpoint import load_checkpoint, resolve_backend
    from tagtune.corpus import Corpus
    from tagtune.labels import prepare_labels
    from tagtune.readers import detect_format, read_file

    require_cleanlab()
    kind, where = resolve_backend(Path(model), "auto")
    checkpoint = load_checkpoint(where, backend=kind, allow_pickle=allow_pickle, device=device)  # type: ignore[arg-type]
    splits: dict[str, list[Example]] = {}
    formats: dict[str, str] = {}
    names: list[str] | None = None
    for split, path in files.items():
        formats[split] = cfg.format if cfg.format != "auto" else detect_format(path)
        splits[split], found = read_file(path, cfg, split=split, format=formats[split], spans=spans)
        names = names or found
    corpus, _, _ = prepare_labels(Corpus(splits, names, "+".join(formats.values())), repair=True)
    for warning in corpus.warnings:
        logger.warning(warning)
    decoder, aligner = checkpoint.decoder(), checkpoint.aligner()
    audit = Audit()
    for split, examples in corpus.splits.items():
        audit.extend(audit_examples(checkpoint.forward(), aligner, examples, decoder, checkpoint.scheme,
                                    calibration=checkpoint.calibration, split=split, file=str(files[split]),
                                    fmt=formats[split], batch_size=batch_size, device=device))
    return audit


def is_tagger(model: str | Path) -> bool:
    """Whether ``model`` is a folder holding a fine-tuned token classifier (named labels) or its ONNX
    export beside it (``model/onnx``)."""
    import json
    from types import SimpleNamespace

    from tagtune.modeling import named_labels

    path = Path(model)
    for folder in (path, path / "onnx"):
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and named_labels(SimpleNamespace(id2label=config.get("id2label"))):
            return True
    return False


def write_suspects(path: str | Path, audit: Audit) -> None:
    """The suspects as JSON lines (one record per suspect span, most likely errors first), atomically."""
    import json

    from tagtune.fileio import atomic_open

    with atomic_open(path) as handle:
        for suspect in audit.suspects:
            handle.write(json.dumps(suspect.as_dict(), ensure_ascii=False) + "\n")
