"""From raw text (or words) to entities with character offsets, labels and scores: the :class:`Tagger`.

Raw text is split into CoNLL-style words (:func:`pretokenize`), each with its ``(start, end)`` in the
original string; the words go through the same alignment, windows, streaming forward pass and decoding
as evaluation, and word spans become entities whose ``text`` is exactly ``original[start:end]``.

Aggregation strategies follow ``transformers.pipeline("token-classification")``: ``first``, ``average``
and ``max`` give every word one label from its sub-tokens; ``simple`` labels every sub-token on its own
and groups neighbours as the pipeline does (entities may then start or end inside a word).

>>> pretokenize("Merkel's U.S. visit (1,000 km).")
[(0, 6), (6, 8), (9, 13), (14, 19), (20, 21), (21, 26), (27, 29), (29, 30), (30, 31)]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import regex
import torch

from tagtune.calibration import scored_spans
from tagtune.checkpoint import Backend, Checkpoint, load_checkpoint, resolve_backend
from tagtune.corpus import Example
from tagtune.errors import ConfigError
from tagtune.inference import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS

logger = logging.getLogger(__name__)

Strategy = Literal["first", "average", "max", "simple"]
STRATEGIES: tuple[str, ...] = ("first", "average", "max", "simple")
Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")

# A word: letters, digits and marks, with the joiners CoNLL-2003 keeps inside one token (hyphen,
# ampersand, apostrophe except before a clitic), invisible format characters allowed inside (the
# normalizer of most tokenizers drops them); ideographs stand alone, as BERT's tokenizer has them.
_W = r"[\p{L}\p{N}\p{M}_--\p{Han}]"
_CLITIC = r"(?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M)"
_TITLES = ("Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Inc|Corp|Ltd|Co|Bros|Gen|Gov|Sen|Rep|Lt|Col|Sgt|Capt|Mt|Ft|vs|etc|"
           "Jan|Feb|Aug|Sep|Sept|Oct|Nov|Dec|No")
_SYMBOL_TAIL = r"[\p{M}\uFE0E\uFE0F\U0001F3FB-\U0001F3FF]|\u200D[^\s\p{Cf}\p{Cc}]"
_WORD = regex.compile(
    rf"""
    (?<![\p{{L}}\p{{N}}])(?:[\p{{L}}--\p{{Han}}]\.){{2,}}(?!{_W})       # U.S. e.g. (abbreviations)
    | (?<![\p{{L}}\p{{N}}])(?:{_TITLES})\.(?!{_W})                    # Mr. Corp. (titles, companies)
    | \p{{N}}+(?:[.,:/]\p{{N}}+)+(?!{_W})                             # 1,000 3.5 12:30 (numbers)
    | ['’]{_CLITIC}(?!{_W})                                          # 's 're (clitics)
    | \p{{Han}}
    | {_W}(?:\p{{Cf}}*{_W})*(?:(?:[-&]|['’](?!{_CLITIC}(?!{_W})))\p{{Cf}}*{_W}(?:\p{{Cf}}*{_W})*)*
    | [\U0001F1E6-\U0001F1FF]{{2}}                                    # flags
    | [^\s\p{{Cf}}\p{{Cc}}\p{{Z}}](?:{_SYMBOL_TAIL})*                  # any other symbol, alone
    """,
    regex.VERBOSE | regex.V1,
)


def pretokenize(text: str) -> list[tuple[int, int]]:
    """Character spans of the CoNLL-style words of ``text`` (whitespace and invisible characters between
    words belong to no word; punctuation is split off; ``U.S.``, ``1,000``, ``German-born`` stay whole).

    >>> text = "Paris\\u200b, \\tBerlin!  東京 😀"
    >>> [text[s:e] for s, e in pretokenize(text)]
    ['Paris', ',', 'Berlin', '!', '東', '京', '😀']
    """
    return [m.span() for m in _WORD.finditer(text)]


def word_spans(words: Sequence[str], delimiter: str = " ") -> tuple[str, list[tuple[int, int]]]:
    """The text of pre-split ``words`` joined by ``delimiter`` (as the pipeline does) and their spans.

    >>> word_spans(["EU", "rejects", "it"])
    ('EU rejects it', [(0, 2), (3, 10), (11, 13)])
    """
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + len(delimiter)
    return delimiter.join(words), spans


@dataclass(frozen=True)
class Entity:
    """One entity in a text: ``text == original[start:end]``, ``score`` the mean label probability
    (calibrated when the model has a ``calibration.json``); ``review`` marks an entity scored below
    ``min_score`` that was kept for review (``PredictConfig.review``)."""

    start: int
    end: int
    label: str
    score: float
    text: str
    review: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {"start": self.start, "end": self.end, "label": self.label, "score": round(self.score, 6),
               "text": self.text}
        if self.review:
            out["review"] = True
        return out


@dataclass
class Prediction:
    """Everything predicted for one text: its words (character spans), one tag per word, entities."""

    text: str
    words: list[tuple[int, int]]
    tags: list[str]
    entities: list[Entity]

    @property
    def tokens(self) -> list[str]:
        return [self.text[s:e] for s, e in self.words]


@dataclass(frozen=True)
class PredictConfig:
    """How a :class:`Tagger` predicts.

    Attributes:
        aggregation: ``first`` (default, as trained), ``average``, ``max`` or ``simple`` (pipeline-equal).
        decoding: ``viterbi`` or ``argmax``; ``None``: the checkpoint's.
        batch_size: Most windows per forward pass; ``None``: 64 (or the checkpoint's evaluation batch
            size if larger).
        max_tokens: Bound on ``batch * longest window`` of a batch (padded tokens per forward pass).
        chunk_words: Words read ahead and tagged together; bounds memory on streams, and the longer,
            the better the length sorting.
        precision: ``auto`` (see :func:`auto_precision`: int8 on CPUs with VNNI, bf16 on GPUs, else
            fp32), ``fp32``, ``bf16`` (autocast) or ``int8`` (dynamic int8 linear layers with
            per-channel weight scales, classifier in fp32; CPU); torch backend only, an ONNX file has
            its own.
        max_length / stride: Window size and overlap in sub-tokens; ``None``: the checkpoint's.
        threads: Intra-op threads of torch / ONNX Runtime; ``None``: their default (all cores). On a
            shared machine, fewer threads than cores avoid threads waiting for each other.
        min_score: Entities scored below it are dropped (abstention); ``None``: all are kept. Pick it
            from the precision/recall table of ``report.html``.
        review: Keep the entities below ``min_score``, marked ``review`` instead of dropped.
        calibrated: Use the model's ``calibration.json`` for entity scores (when it has one).
    """

    aggregation: Strategy = "first"
    decoding: Literal["viterbi", "argmax"] | None = None
    batch_size: int | None = None
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    chunk_words: int = 50_000
    precision: Precision = "auto"
    max_length: int | None = None
    stride: int | None = None
    threads: int | None = None
    min_score: float | None = None
    review: bool = False
    calibrated: bool = True

    def __post_init__(self) -> None:
        if self.aggregation not in STRATEGIES:
            raise ConfigError(f"--aggregation '{self.aggregation}' is not one of {', '.join(STRATEGIES)}")
        if self.decoding not in (None, "viterbi", "argmax"):
            raise ConfigError(f"--decoding '{self.decoding}' is not one of viterbi, argmax")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--batch_size must be at least 1, got {self.batch_size}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"--min_score must be between 0 and 1 (an entity score), got {self.min_score}")
        if self.review and self.min_score is None:
            raise ConfigError("--review marks the entities scored below --min_score; pass --min_score too")


@dataclass
class _Doc:
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)
    document: str | None = None  # the id of the document a sentence belongs to, for document context
    origin: str = ""  # where the words come from (``file:line``), for warnings


class Tagger:
    """Tags texts with one loaded model (torch or ONNX); made by :func:`load`.

    ``tagger("Angela Merkel visited Paris.")`` returns a list of :class:`Entity`; a list of texts gives
    one list per text. :meth:`predict` and :meth:`predict_words` stream :class:`Prediction` objects in
    input order with bounded memory.
    """

    def __init__(self, checkpoint: Checkpoint, forward, config: PredictConfig = PredictConfig(), *,
                 backend: str = "torch", precision: str = "fp32", autocast_dtype=None, device: str = "cpu"):
        self.checkpoint = checkpoint
        self.forward = forward
        self.config = config
        self.backend = backend
        self.precision = precision
        self.autocast_dtype = autocast_dtype
        self.device = device
        self.labels = list(checkpoint.labels)
        self.scheme = checkpoint.scheme
        windows = {k: v for k, v in (("max_length", config.max_length), ("stride", config.stride)) if v is not None}
        self.aligner = checkpoint.aligner(**windows)
        self.decoder = checkpoint.decoder(config.decoding)  # a CRF model's transitions included
        # Changes entity scores only: tags are decoded from the raw scores.
        self.calibration = checkpoint.calibration if config.calibrated else None
        # Small evaluation batches (saved for training-time memory) waste speed here; padding stays small
        # because windows are sorted by length.
        self.batch_size = config.batch_size or max(DEFAULT_BATCH_SIZE, checkpoint.eval.batch_size)
        self.workers = int(getattr(forward, "workers", 1))  # batches run at once (ONNX on CPU: one per core)
        # Words longer than ``aligner.word_cap`` sub-tokens seen so far (cut; each still gets one tag).
        self.long_words = 0
        self.first_long_word: str | None = None

    # ------------------------------------------------------------------ public API

    def __call__(self, inputs: str | Sequence[str]) -> list[Entity] | list[list[Entity]]:
        """Entities of one text, or one list of entities per text of a list."""
        if isinstance(inputs, str):
            return next(self.predict([inputs])).entities
        return [p.entities for p in self.predict(list(inputs))]

    def predict(self, texts: Iterable[str], *, progress: bool = False) -> Iterator[Prediction]:
        """Tag raw texts (one document each, any length), yielding predictions in input order."""
        docs = (_Doc(text, pretokenize(text)) for text in _check_texts(texts))
        return self._stream(docs, _total(texts), progress)

    def predict_words(self, sentences: Iterable[Sequence[str]], *, progress: bool = False) -> Iterator[Prediction]:
        """Tag pre-split words; offsets refer to the words joined by single spaces (as the pipeline does)."""
        return self.predict_examples((Example(tuple(words)) for words in sentences), progress=progress,
                                     total=_total(sentences))

    def predict_examples(self, examples: Iterable[Example], *, progress: bool = False,
                         total: int | None = None) -> Iterator[Prediction]:
        """Tag pre-split sentences with their document ids (``Example.doc``, as the readers give them).

        A model trained with document context then sees the neighbouring sentences of the same
        document, as it did in training; offsets are as in :meth:`predict_words`.
        """
        docs = (_Doc(*word_spans(list(e.tokens)), document=e.doc, origin=e.origin) for e in examples)
        return self._stream(docs, total, progress)

    def metadata(self) -> dict[str, Any]:
        """What the tagger is: labels, scheme, backend, precision, settings (no filesystem paths)."""
        config = getattr(getattr(self.checkpoint.model, "config", None), "model_type", None)
        return {
            "model": Path(self.checkpoint.path).name, "model_type": config or getattr(self.forward, "model_type", None),
            "labels": self.labels, "scheme": self.scheme, "backend": self.backend, "precision": self.precision,
            "aggregation": self.config.aggregation, "decoding": self.decoder.method,
            "max_length": self.aligner.config.max_length, "stride": self.aligner.stride, "batch_size": self.batch_size,
            "parallel_batches": self.workers,
            "calibration": ({"temperature": round(self.calibration.temperature, 6),
                             "per_label": self.calibration.per_label} if self.calibration is not None else None),
            "min_score": self.config.min_score, "review": self.config.review,
        }

    # ------------------------------------------------------------------ streaming

    def _stream(self, docs: Iterable[_Doc], total: int | None, progress: bool) -> Iterator[Prediction]:
        from contextlib import nullcontext

        from tagtune.progress import progress_bar

        bar_context = progress_bar(total=total, desc="tagging", unit="doc") if progress else nullcontext(_NoBar())
        with bar_context as bar:
            chunk: list[_Doc] = []
            words = 0
            for doc in docs:
                # A full chunk whose last sentence has a document waits for the next sentence: chunks
                # end between documents, so that document context never stops at a chunk's edge (a
                # document longer than ten chunks is cut anyway, to keep memory bounded).
                if chunk and words >= self.config.chunk_words and (
                        doc.document != chunk[-1].document or words >= 10 * self.config.chunk_words):
                    yield from self._tag_chunk(chunk)
                    bar.update(len(chunk))
                    chunk, words = [], 0
                chunk.append(doc)
                words += len(doc.spans)
                if words >= self.config.chunk_words and doc.document is None:  # no context: cut now
                    yield from self._tag_chunk(chunk)
                    bar.update(len(chunk))
                    chunk, words = [], 0
            if chunk:
                yield from self._tag_chunk(chunk)
                bar.update(len(chunk))

    def _tag_chunk(self, docs: list[_Doc]) -> list[Prediction]:
        from tagtune.inference import iter_word_scores

        simple = self.config.aggregation == "simple"
        examples = [Example(tuple(doc.text[s:e] for s, e in doc.spans), doc=doc.document, origin=doc.origin)
                    for doc in docs]
        encoding = self.aligner.encode(examples, labelled=False, subtokens=self.config.aggregation != "first")
        self.long_words += encoding.long_words
        self.first_long_word = self.first_long_word or encoding.first_long_word
        results: list[Prediction | None] = [None] * len(docs)
        for index, scores in iter_word_scores(
            self.forward, encoding, len(self.labels), pad_id=self.aligner.pad_id, batch_size=self.batch_size,
            max_tokens=self.config.max_tokens, device=self.device, autocast_dtype=self.autocast_dtype,
            aggregation="none" if simple else self.config.aggregation,  # type: ignore[arg-type]
            workers=self.workers,
        ):
            doc = docs[index]
            if simple:
                results[index] = self._simple(doc, scores, encoding.token_words[index],  # type: ignore[index]
                                              encoding.token_offsets[index])  # type: ignore[index]
            else:
                results[index] = self._by_word(doc, scores)
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ scores -> entities

    def _by_word(self, doc: _Doc, scores: np.ndarray) -> Prediction:
        ids = self.decoder.decode_ids(scores)
        labels = self.labels
        tags = [labels[i] for i in ids]
        entities: list[Entity] = []
        if all(tag == "O" for tag in tags):  # most sentences: nothing more to do
            return Prediction(doc.text, doc.spans, tags, entities)
        chosen = self._probabilities(scores, ids).tolist()
        for label, first, last in scored_spans(tags, self.scheme):
            start, end = doc.spans[first][0], doc.spans[last - 1][1]
            self._keep(entities, Entity(start, end, label, sum(chosen[first:last]) / (last - first), doc.text[start:end]))
        return Prediction(doc.text, doc.spans, tags, entities)

    def _probabilities(self, scores: np.ndarray, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The (calibrated) probability of label ``ids[w]`` of each word (sub-token for ``simple``)."""
        if self.calibration is not None:
            return self.calibration.chosen(scores, ids)
        return np.exp(scores[np.arange(len(ids)), np.asarray(ids, dtype=np.int64)])

    def _keep(self, entities: list[Entity], entity: Entity) -> None:
        """Abstention: an entity scored below ``min_score`` is dropped, or kept marked for review."""
        threshold = self.config.min_score
        if threshold is None or entity.score >= threshold:
            entities.append(entity)
        elif self.config.review:
            entities.append(replace(entity, review=True))

    def _simple(self, doc: _Doc, scores: np.ndarray, token_words: np.ndarray, offsets: np.ndarray) -> Prediction:
        """The pipeline's ``simple`` strategy: sub-token arg-max, neighbours of one type grouped unless ``B-``."""
        ids = scores.argmax(axis=-1) if len(scores) else np.zeros(0, dtype=np.int64)
        probs = self._probabilities(scores, ids) if len(scores) else np.zeros(0)
        starts = np.asarray([s for s, _ in doc.spans], dtype=np.int64)
        char_start = starts[token_words] + offsets[:, 0] if len(ids) else starts[:0]
        char_end = starts[token_words] + offsets[:, 1] if len(ids) else starts[:0]
        entities: list[Entity] = []
        group: list[int] = []

        def close() -> None:
            label = self.labels[ids[group[0]]].split("-", 1)[-1]
            if label != "O":
                start, end = int(char_start[group[0]]), int(char_end[group[-1]])
                score = float(np.mean(probs[group]))
                self._keep(entities, Entity(start, end, label, score, doc.text[start:end]))

        for t in range(len(ids)):
            bi, tag = _bi_tag(self.labels[ids[t]])
            if group and (tag != _bi_tag(self.labels[ids[group[-1]]])[1] or bi == "B"):
                close()
                group = []
            group.append(t)
        if group:
            close()
        first_token = np.flatnonzero(np.r_[True, token_words[1:] != token_words[:-1]]) if len(ids) else []
        tags = [self.labels[ids[t]] for t in first_token]
        return Prediction(doc.text, doc.spans, tags, entities)


class _NoBar:
    def update(self, n: int) -> None:
        pass


def _bi_tag(label: str) -> tuple[str, str]:
    """The pipeline's reading of a label: ``("B", type)``, ``("I", type)``, or ``("I", label)``."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _total(items: Iterable) -> int | None:
    return len(items) if isinstance(items, Sequence) else None


def _check_texts(texts: Iterable[str]) -> Iterator[str]:
    if isinstance(texts, str):
        raise ConfigError("predict() takes a list of texts; call the tagger on a single string instead")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ConfigError(f"text #{i} is a {type(text).__name__}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # the tokenizer would fail with a TypeError
            raise ConfigError(f"text #{i} is not valid Unicode (a lone surrogate at character {error.start})") from None
        yield text


# ---------------------------------------------------------------------- loading


def auto_precision(device: str = "cpu") -> str:
    """The fastest precision that keeps the F1 of fp32 (within 0.5) on ``device``, by measurement.

    On a GPU with bf16, bf16. On a CPU with int8 dot products (AVX-512 VNNI / AVX-VNNI), dynamic int8:
    on the development machine (Xeon with AVX-512 BF16 and VNNI, no AMX) int8 ran about 2x fp32 and
    bf16 matrix products ran at less than half the speed of fp32 ones, so bf16 is never chosen on a
    CPU (``precision="bf16"`` still asks for it). Elsewhere fp32.
    """
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return "fp32"
    return "int8" if any(flag in flags for flag in (" avx512_vnni", " avx_vnni")) else "fp32"


def load(model_dir: str | Path, *, backend: Backend = "auto", config: PredictConfig | None = None,
         device: str = "cpu", allow_pickle: bool = False, **options: Any) -> Tagger:
    """Load a tagger from a model directory (tagtune or transformers) or an ONNX export.

    Args:
        model_dir: A fine-tuned model directory, or a folder written by ``tagtune export``.
        backend: ``torch``, ``onnx`` (``model_dir`` or ``model_dir/onnx``), or ``auto`` (ONNX when the
            folder holds only an ONNX model).
        config: Prediction settings; ``options`` (``aggregation="max"``, ``precision="fp32"``...)
            override its fields.
        device: ``cpu`` or ``cuda[:n]`` for torch.
        allow_pickle: Accept pickled weights (they can run code when loaded).

    Raises:
        ModelLoadError: Nothing loadable at ``model_dir``.
        ConfigError: An unknown option or value.

    Example::

        tagger = tagtune.load("out/minilm-conll")
        tagger("Angela Merkel visited Paris.")
    """
    unknown = sorted(set(options) - set(PredictConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; expected {', '.join(PredictConfig.__dataclass_fields__)}")
    config = replace(config or PredictConfig(), **options)
    kind, path = resolve_backend(Path(model_dir), backend)
    if kind == "torch" and config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = load_checkpoint(path, backend=kind, allow_pickle=allow_pickle, device=device,  # type: ignore[arg-type]
                                 threads=config.threads)
    if kind == "onnx":
        return Tagger(checkpoint, checkpoint.forward(), config, backend="onnx",
                      precision=checkpoint.model.precision)  # type: ignore[attr-defined]
    precision = config.precision
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "int8":
        checkpoint.model = quantize_int8(checkpoint.model, device)  # type: ignore[arg-type]
    dtype = torch.bfloat16 if precision == "bf16" else None
    return Tagger(checkpoint, checkpoint.forward(), config, backend="torch", precision=precision,
                  autocast_dtype=dtype, device=device)


def quantize_int8(model, device: str = "cpu"):
    """The model with its linear layers quantized to int8 (dynamic: activations quantized per batch).

    Raises:
        ConfigError: Not on CPU, or this torch has no dynamic quantization any more.
    """
    import warnings

    if not device.startswith("cpu"):
        raise ConfigError(f"--precision int8 runs on CPU only (got --device {device}); use bf16 on a GPU")
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:
        raise ConfigError("this torch has no dynamic int8 quantization; use --backend onnx after "
                          "tagtune export MODEL --format onnx --quantize int8") from None
    # Per-channel weight scales keep the F1 of fp32 where per-tensor ones lose about a point; the
    # classifier (tiny, and the most sensitive) stays fp32.
    spec = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith("classifier")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices; the API still works here
        return quantize_dynamic(model, spec, dtype=torch.qint8)
