"""Words <-> sub-tokens: tokenization, label alignment, windows, document context, and the way back.

A sentence becomes one or more *windows* (model inputs). Long sentences are cut into overlapping
windows, never truncated. Every word is *owned* by exactly one window: the one whose core region holds
the word's first sub-token. Only owned first sub-tokens carry a label at training time and give the
word's prediction at inference time, so every input word gets exactly one prediction. A window that
owns nothing (it holds only the inside of a long word) is not emitted.

A single word longer than :attr:`Aligner.word_cap` sub-tokens (a URL, a base64 blob, a chemical name)
keeps only its first ``word_cap`` sub-tokens: its first sub-token still carries its label and
prediction, and half a window is left for the words around it. Such words are counted
(:attr:`Encoding.long_words`).

Positions that are special tokens, later sub-tokens of a word (unless ``label_all_tokens``), overlap
outside a window's core, or document context carry label ``-100`` and ``word_index == -1``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tagtune.config import AlignConfig
from tagtune.corpus import Example
from tagtune.errors import AlignmentError, ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
# Pre-tokenizers that need a leading space to encode a word as a word (RoBERTa, GPT-2, BLOOM, ...).
_PREFIX_SPACE_PRETOKENIZERS = {"ByteLevel", "Metaspace"}


def load_tokenizer(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
):
    """Load a fast tokenizer ready for pre-split words.

    Byte-level BPE tokenizers are reloaded with ``add_prefix_space=True`` so that a word in the
    middle of a sentence is encoded as it would be in running text.

    Raises:
        ModelLoadError: The tokenizer cannot be loaded.
        AlignmentError: The tokenizer is not a fast tokenizer (no word ids, so no alignment).
    """
    from transformers import AutoTokenizer

    kwargs = {"trust_remote_code": trust_remote_code, "revision": revision, "cache_dir": cache_dir}
    if token:
        kwargs["token"] = token
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelLoadError(
            f"cannot load the tokenizer of '{name_or_path}': {first_line}; pass a local model directory "
            "(the hub is not reachable offline)"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise AlignmentError(
            f"the tokenizer of '{name_or_path}' ({type(tokenizer).__name__}) is not a fast tokenizer; "
            "tagtune needs word ids to align labels: use a model with a tokenizer.json"
        )
    if _needs_prefix_space(tokenizer) and not getattr(tokenizer, "add_prefix_space", False):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, add_prefix_space=True, **kwargs)
    return tokenizer


def _needs_prefix_space(tokenizer) -> bool:
    pre = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    kinds = {pre.get("type")} | {p.get("type") for p in pre.get("pretokenizers", []) or []}
    return bool(kinds & _PREFIX_SPACE_PRETOKENIZERS)


@dataclass(frozen=True)
class SpecialTokens:
    """The special-token template of a tokenizer: ids before and after the content."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        # transformers 5 has no build_inputs_with_special_tokens; learn the template from an encoding.
        encoding = tokenizer([["a"]], is_split_into_words=True, add_special_tokens=True)
        ids, word_ids = encoding["input_ids"][0], encoding.word_ids(0)
        first = word_ids.index(0)
        last = len(word_ids) - 1 - word_ids[::-1].index(0)
        return cls(tuple(ids[:first]), tuple(ids[last + 1 :]))

    def __len__(self) -> int:
        return len(self.prefix) + len(self.suffix)


@dataclass
class Encoding:
    """Model inputs for a list of examples, one row per window, plus what is needed to go back.

    Attributes:
        input_ids: One list of token ids per window, special tokens included.
        labels: Per position label ids (``-100`` ignored), or ``None`` for unlabelled data.
        word_index: Per position, the index of the word whose prediction this position gives, or -1.
        example_index: For each window, the index of its example in the input list.
        word_counts: Number of words of each example.
        windowed_examples: Number of examples that needed more than one window.
        replaced_words: Number of words that tokenized to nothing and were encoded as the unknown token.
        long_words: Number of words longer than the aligner's ``word_cap`` sub-tokens, cut to their first
            ``word_cap`` (the rest of their sub-tokens are not model input).
        first_long_word: Where the first such word is (``file:line word n``) and its length, for a warning.
        token_index: Only with ``encode(..., subtokens=True)``: per position, the index of the example's
            content sub-token whose scores this position gives (window core only), or -1. The cores
            tile the content, so every sub-token is given by exactly one window.
        token_words: Only with ``subtokens=True``: per example, the word of each content sub-token.
        token_offsets: Only with ``subtokens=True``: per example, ``[n, 2]`` character offsets of each
            content sub-token inside its word (a word replaced by the unknown token spans the word).
    """

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] | None = None
    word_index: list[list[int]] = field(default_factory=list)
    example_index: list[int] = field(default_factory=list)
    word_counts: list[int] = field(default_factory=list)
    windowed_examples: int = 0
    replaced_words: int = 0
    long_words: int = 0
    first_long_word: str | None = None
    token_index: list[list[int]] | None = None
    token_words: list[np.ndarray] | None = None
    token_offsets: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def columns(self) -> dict[str, list]:
        """Columns for ``datasets.Dataset.from_dict`` (``labels`` only when labelled)."""
        columns: dict[str, list] = {"input_ids": self.input_ids, "example_index": self.example_index}
        columns["word_index"] = self.word_index
        if self.labels is not None:
            columns["labels"] = self.labels
        return columns


def window_bounds(n: int, budget: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Split ``n`` content positions into windows of at most ``budget`` with ``stride`` overlap.

    Returns ``(start, end, core_start, core_end)`` per window; the cores tile ``[0, n)`` exactly, so
    each position is owned by one window.

    >>> window_bounds(5, 8, 2)
    [(0, 5, 0, 5)]
    >>> window_bounds(10, 6, 2)
    [(0, 6, 0, 5), (4, 10, 5, 10)]
    """
    if n <= budget:
        return [(0, n, 0, n)]
    step = budget - stride
    starts = list(range(0, n - budget, step)) + [n - budget]
    bounds = []
    for k, start in enumerate(starts):
        end = start + budget
        core_start = 0 if k == 0 else bounds[-1][3]
        # The next window's core starts midway through the overlap, so each side keeps context.
        core_end = n if k == len(starts) - 1 else (starts[k + 1] + end) // 2
        bounds.append((start, end, core_start, core_end))
    return bounds


class Aligner:
    """Turns examples into windows for one tokenizer, label set and :class:`AlignConfig`."""

    def __init__(self, tokenizer, config: AlignConfig, label2id: Mapping[str, int] | None = None):
        self.tokenizer = tokenizer
        self.config = config
        self.label2id = dict(label2id) if label2id is not None else None
        self.specials = SpecialTokens.of(tokenizer)
        self.budget = config.max_length - len(self.specials)
        if self.budget < 2:
            raise ConfigError(f"--max_seq_length {config.max_length} leaves no room for words")
        self.stride = min(32, self.budget // 4) if config.stride is None else config.stride
        if not 0 <= self.stride <= self.budget // 2:
            raise ConfigError(
                f"--stride {config.stride} must be between 0 and {self.budget // 2} for "
                f"--max_seq_length {config.max_length}"
            )
        # A word longer than this many sub-tokens is cut to them: it fits in one window with room for
        # its neighbours, and its first sub-token (which carries its tag) is always model input.
        self.word_cap = max(1, self.budget // 2)
        self._b_to_i = self._continuation_ids() if self.label2id else {}
        self._unk_word = tokenizer.unk_token or "?"
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _continuation_ids(self) -> dict[int, int]:
        assert self.label2id is not None
        mapping = {}
        for label, idx in self.label2id.items():
            cont = label
            if label[:2] in ("B-", "S-"):
                candidate = "I-" + label[2:]
                cont = candidate if candidate in self.label2id else label
            elif label[:2] == "E-":
                cont = "I-" + label[2:] if "I-" + label[2:] in self.label2id else label
            mapping[idx] = self.label2id[cont]
        return mapping

    def _tokenize_words(self, batch: Sequence[Sequence[str]]) -> tuple[list[list[int]], list[list[int]], int]:
        """Sub-token ids and word ids per sentence; words that vanish are re-encoded as unknown, words
        longer than :attr:`word_cap` sub-tokens are cut."""
        ids, word_ids, _, replaced, _ = self._tokenize(batch, with_offsets=False)
        return ids, word_ids, replaced

    def _tokenize(self, batch: Sequence[Sequence[str]], with_offsets: bool
                  ) -> tuple[list[list[int]], list[list[int]], list[list[tuple[int, int]]] | None, int,
                             list[tuple[int, int, int]]]:
        """:meth:`_tokenize_words` plus, when asked, each sub-token's character offsets in its word, and
        ``(sentence, word, sub-tokens)`` of every word that was cut."""
        encoded = self.tokenizer([list(words) for words in batch], is_split_into_words=True,
                                 add_special_tokens=False, return_offsets_mapping=with_offsets)
        all_ids, all_word_ids, replaced = [], [], 0
        long_words: list[tuple[int, int, int]] = []
        all_offsets: list[list[tuple[int, int]]] | None = [] if with_offsets else None
        for i, words in enumerate(batch):
            ids, word_ids = encoded["input_ids"][i], encoded.word_ids(i)
            offsets = encoded["offset_mapping"][i] if with_offsets else None
            missing = set(range(len(words))) - set(word_ids)
            if missing:
                # A word made only of characters the normalizer drops (zero-width, control) would
                # otherwise get no prediction at all.
                fixed = [self._unk_word if j in missing else w for j, w in enumerate(words)]
                again = self.tokenizer([fixed], is_split_into_words=True, add_special_tokens=False,
                                       return_offsets_mapping=with_offsets)
                ids, word_ids = again["input_ids"][0], again.word_ids(0)
                if with_offsets:
                    # The unknown token stands for the whole original word.
                    offsets = [(0, len(words[w])) if w in missing else o
                               for w, o in zip(word_ids, again["offset_mapping"][0])]
                replaced += len(missing)
                if set(range(len(words))) - set(word_ids):
                    raise AlignmentError(f"words {sorted(missing)} produce no sub-token even as '{self._unk_word}'")
            ids, word_ids = list(ids), list(word_ids)
            if len(ids) - len(words) >= self.word_cap:  # only then can one word be longer than the cap
                keep, cut = _cap_words(word_ids, self.word_cap)
                if cut:
                    long_words.extend((i, w, n) for w, n in cut)
                    ids, word_ids = [ids[p] for p in keep], [word_ids[p] for p in keep]
                    offsets = [offsets[p] for p in keep] if offsets is not None else None
            all_ids.append(ids)
            all_word_ids.append(word_ids)
            if all_offsets is not None:
                all_offsets.append(list(offsets))
        return all_ids, all_word_ids, all_offsets, replaced, long_words

    def encode(self, examples: Sequence[Example], labelled: bool | None = None,
               batch_size: int = 1000, subtokens: bool = False) -> Encoding:
        """Encode examples into windows.

        Args:
            examples: The sentences, in order (document context uses neighbours of the same ``doc``).
            labelled: Produce labels; default: when every example has tags and a label map is set.
            batch_size: Sentences tokenized per call of the fast tokenizer.
            subtokens: Also record every content sub-token (``token_index``, ``token_words``,
                ``token_offsets``), for predictions that use all sub-tokens of a word.

        Raises:
            LabelSchemeError: A tag is not in the label map (should have been caught by labels.py).
        """
        if labelled is None:
            labelled = self.label2id is not None and all(e.tags is not None for e in examples)
        out = Encoding(labels=[] if labelled else None)
        if subtokens:
            out.token_index, out.token_words, out.token_offsets = [], [], []
        context = self.config.context_size
        for offset in range(0, len(examples), batch_size):
            chunk = examples[offset : offset + batch_size]
            ids_batch, word_ids_batch, offsets_batch, replaced, long_words = self._tokenize(
                [e.tokens for e in chunk], subtokens)
            out.replaced_words += replaced
            out.long_words += len(long_words)
            if long_words and out.first_long_word is None:
                i, w, n = long_words[0]
                where = chunk[i].origin or f"sentence #{offset + i}"
                word = chunk[i].tokens[w]
                shown = repr(word) if len(word) <= 40 else repr(word[:37] + "...")
                out.first_long_word = f"{where} word {w + 1} {shown}, {n} sub-tokens"
            for i, example in enumerate(chunk):
                if offsets_batch is not None:
                    out.token_words.append(np.asarray(word_ids_batch[i], dtype=np.int64))  # type: ignore[union-attr]
                    out.token_offsets.append(  # type: ignore[union-attr]
                        np.asarray(offsets_batch[i], dtype=np.int64).reshape(-1, 2))
                index = offset + i
                left, right = ([], [])
                if context and len(ids_batch[i]) < self.budget:
                    left, right = self._context(examples, index, ids_batch, word_ids_batch, offset,
                                                self.budget - len(ids_batch[i]))
                self._encode_one(out, index, example, ids_batch[i], word_ids_batch[i], labelled, left, right)
        return out

    def _context(self, examples, index, ids_batch, word_ids_batch, offset, room) -> tuple[list[int], list[int]]:
        """Sub-token ids of neighbouring sentences of the same document, up to ``context_size`` a side."""
        doc = examples[index].doc
        if doc is None:
            return [], []
        per_side = min(self.config.context_size, room // 2)

        def ids_of(j: int) -> list[int]:
            if offset <= j < offset + len(ids_batch):
                return ids_batch[j - offset]
            ids, _, _ = self._tokenize_words([examples[j].tokens])
            return ids[0]

        left: list[int] = []
        j = index - 1
        while j >= 0 and len(left) < per_side and examples[j].doc == doc:
            left = ids_of(j) + left
            j -= 1
        right: list[int] = []
        j = index + 1
        while j < len(examples) and len(right) < per_side and examples[j].doc == doc:
            right = right + ids_of(j)
            j += 1
        return left[len(left) - per_side :] if len(left) > per_side else left, right[:per_side]

    def _encode_one(self, out: Encoding, index: int, example: Example, ids: list[int], word_ids: list[int],
                    labelled: bool, left: list[int], right: list[int]) -> None:
        n = len(ids)
        out.word_counts.append(len(example.tokens))
        if n == 0:
            return  # nothing to feed the model; the example is complete with no words
        first_position = _first_positions(word_ids)
        tag_ids = self._tag_ids(example) if labelled else None
        bounds = window_bounds(n, self.budget, self.stride)
        if len(bounds) > 1:
            out.windowed_examples += 1
        prefix, suffix = list(self.specials.prefix), list(self.specials.suffix)
        for start, end, core_start, core_end in bounds:
            content = ids[start:end]
            word_index = [-1] * len(content)
            labels = [IGNORE_INDEX] * len(content)
            for p in range(core_start, core_end):
                w = word_ids[p]
                if first_position[w] == p:
                    word_index[p - start] = w
                    if tag_ids is not None:
                        labels[p - start] = tag_ids[w]
                elif tag_ids is not None and self.config.label_all_tokens:
                    labels[p - start] = self._b_to_i[tag_ids[w]]
            if (out.token_index is None and word_index.count(-1) == len(word_index)
                    and labels.count(IGNORE_INDEX) == len(labels)):
                continue  # the inside of a long word: nothing to learn or predict here
            pad_left, pad_right = [-1] * (len(prefix) + len(left)), [-1] * (len(right) + len(suffix))
            out.input_ids.append(prefix + left + content + right + suffix)
            out.word_index.append(pad_left + word_index + pad_right)
            if out.token_index is not None:
                token_index = [p if core_start <= p < core_end else -1 for p in range(start, end)]
                out.token_index.append(pad_left + token_index + pad_right)
            if out.labels is not None:
                out.labels.append([IGNORE_INDEX] * len(pad_left) + labels + [IGNORE_INDEX] * len(pad_right))
            out.example_index.append(index)

    def _tag_ids(self, example: Example) -> list[int]:
        assert self.label2id is not None and example.tags is not None
        try:
            return [self.label2id[tag] for tag in example.tags]
        except KeyError as error:
            from tagtune.errors import LabelSchemeError

            raise LabelSchemeError(
                f"{example.origin or 'example ' + example.id}: tag {error.args[0]!r} is not one of the model's "
                f"labels ({', '.join(self.label2id)}); train with data that has it or map it"
            ) from None


def _cap_words(word_ids: Sequence[int], cap: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Positions to keep so that no word has more than ``cap`` sub-tokens, and ``(word, sub-tokens)``
    of each word that was cut.

    >>> _cap_words([0, 1, 1, 1, 1, 2], 2)
    ([0, 1, 2, 5], [(1, 4)])
    """
    keep: list[int] = []
    cut: list[tuple[int, int]] = []
    run = 0
    for position, word in enumerate(word_ids):
        run = run + 1 if position and word_ids[position - 1] == word else 1
        if run <= cap:
            keep.append(position)
        elif run == cap + 1:
            cut.append((word, 0))
        if run > cap and (position + 1 == len(word_ids) or word_ids[position + 1] != word):
            cut[-1] = (word, run)
    return keep, cut


def warn_long_words(split: str, count: int, first: str | None, cap: int) -> None:
    """Log the one warning about the words of ``split`` that were cut to ``cap`` sub-tokens (if any)."""
    if count:
        logger.warning("%s: %d word%s longer than %d sub-tokens cut to their first %d (the first sub-token "
                       "carries the word's tag; first: %s)", split, count, "s" if count != 1 else "", cap, cap,
                       first)


def _first_positions(word_ids: Sequence[int | None]) -> dict[int, int]:
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in first:
            first[word] = position
    return first


Aggregation = Literal["first", "average", "max", "none"]
AGGREGATIONS: tuple[str, ...] = ("first", "average", "max", "none")


class WordCollector:
    """Reassembles per-word scores from window rows that arrive in any order (streaming).

    Memory holds only examples whose windows have not all arrived yet.

    ``aggregation`` says how a word's sub-tokens make its scores: ``first`` (the first sub-token, as
    in training), ``average`` (mean probabilities of all its sub-tokens), ``max`` (the sub-token with
    the most confident label) or ``none`` (no words: one row per content sub-token). Every mode but
    ``first`` needs an encoding made with ``subtokens=True`` (``token_words``) and windows added with
    their ``token_index``.
    """

    def __init__(self, word_counts: Sequence[int], num_labels: int, aggregation: Aggregation = "first",
                 token_words: Sequence[np.ndarray] | None = None):
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation '{aggregation}' is not one of {', '.join(AGGREGATIONS)}")
        if aggregation != "first" and token_words is None:
            raise ConfigError(f"aggregation '{aggregation}' needs an encoding made with subtokens=True")
        self.word_counts = word_counts
        self.num_labels = num_labels
        self.aggregation = aggregation
        self.token_words = token_words
        self._pending: dict[int, np.ndarray] = {}
        self._missing: dict[int, int] = {}

    def add(self, example_index: int, word_index: np.ndarray, scores: np.ndarray,
            token_index: np.ndarray | None = None) -> np.ndarray | None:
        """Add one window's per-position scores ``[T, L]``; returns the example's ``[words, L]`` when complete
        (``[sub-tokens, L]`` for aggregation ``none``)."""
        by_token = self.aggregation != "first"
        if by_token:
            if token_index is None:
                raise ConfigError(f"aggregation '{self.aggregation}' needs each window's token_index")
            word_index = token_index
        mask = word_index >= 0
        if not mask.any():
            return None  # a window that owns nothing (only context) must not reopen a finished example
        if example_index not in self._pending:
            count = (len(self.token_words[example_index]) if by_token  # type: ignore[index]
                     else self.word_counts[example_index])
            self._pending[example_index] = np.zeros((count, self.num_labels), dtype=np.float32)
            self._missing[example_index] = count
        rows = self._pending[example_index]
        rows[word_index[mask]] = scores[: len(word_index)][mask]
        self._missing[example_index] -= int(mask.sum())
        if self._missing[example_index] == 0:
            del self._missing[example_index]
            rows = self._pending.pop(example_index)
            return self._reduce(example_index, rows) if by_token else rows
        return None

    def _reduce(self, example_index: int, token_scores: np.ndarray) -> np.ndarray:
        """Per-word log-probabilities from the log-probabilities of all sub-tokens of an example."""
        if self.aggregation == "none":
            return token_scores
        words = self.token_words[example_index]  # type: ignore[index]
        count = self.word_counts[example_index]
        if self.aggregation == "max":
            # The pipeline's "max": the distribution of the word's most confident sub-token.
            order = np.lexsort((-token_scores.max(axis=-1), words))
            first = np.ones(len(order), dtype=bool)
            first[1:] = words[order][1:] != words[order][:-1]
            picked = order[first]
            assert len(picked) == count, "every word has at least one sub-token"
            return token_scores[picked]
        # "average": mean of the probabilities (the pipeline's), back to log space for decoding.
        starts = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
        assert len(starts) == count, "every word has at least one sub-token, in order"
        sizes = np.diff(np.r_[starts, len(words)])
        mean = np.add.reduceat(np.exp(token_scores), starts, axis=0) / sizes[:, None]
        return np.log(np.maximum(mean, np.finfo(np.float32).tiny)).astype(np.float32)

    def pending(self) -> int:
        return len(self._pending)

    def missing(self) -> dict[int, int]:
        """``{example index: rows still missing}`` of the examples not complete yet."""
        return dict(self._missing)


def iter_length_sorted_batches(lengths: Sequence[int], max_batch_size: int,
                               max_tokens: int | None = None) -> Iterator[list[int]]:
    """Row indices grouped into batches of similar length (longest first), for inference.

    ``max_tokens`` bounds ``batch_size * longest`` so that padded batches have a bounded size.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for row in order:
        longest = lengths[batch[0]] if batch else lengths[row]
        if batch and (len(batch) >= max_batch_size or (max_tokens and (len(batch) + 1) * longest > max_tokens)):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
