"""A disk cache of tokenized, aligned data: a second run with the same data and settings skips tokenization.

The key is a fingerprint of everything the encoding depends on: the tokenizer (its full serialized
definition), the alignment settings, the label map and the examples themselves (words, tags, documents).
Entries are plain ``.npz`` arrays (loaded with ``allow_pickle=False``) written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tagtune.align import Aligner, Encoding
from tagtune.corpus import Example
from tagtune.fileio import atomic_open

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: words longer than half a window are cut (align.Aligner.word_cap)


def default_cache_dir() -> Path:
    """``$TAGTUNE_CACHE``, else ``$XDG_CACHE_HOME/tagtune``, else ``~/.cache/tagtune``."""
    if os.environ.get("TAGTUNE_CACHE"):
        return Path(os.environ["TAGTUNE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tagtune"


def fingerprint(aligner: Aligner, examples: Sequence[Example], labelled: bool) -> str:
    """A hex digest that changes whenever the encoding of ``examples`` could change."""
    digest = hashlib.sha256()
    digest.update(f"v{FORMAT_VERSION}|{labelled}|{aligner.stride}|".encode())
    digest.update(hashlib.sha256(aligner.tokenizer.backend_tokenizer.to_str().encode()).digest())
    digest.update(json.dumps(asdict(aligner.config), sort_keys=True).encode())
    digest.update(json.dumps(aligner.label2id, sort_keys=True).encode())
    for example in examples:
        digest.update("\x1f".join(example.tokens).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1e" + "\x1f".join(example.tags or ()).encode() + b"\x1e" + str(example.doc).encode() + b"\x1d")
    return digest.hexdigest()[:32]


def _ragged(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    flat = np.fromiter((x for r in rows for x in r), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def _unragged(flat: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    return [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(offsets) - 1)]


def save_encoding(path: Path, encoding: Encoding) -> None:
    """Write ``encoding`` to ``path`` (``.npz``) atomically."""
    arrays: dict[str, np.ndarray] = {}
    arrays["input_ids"], arrays["offsets"] = _ragged(encoding.input_ids)
    arrays["word_index"], _ = _ragged(encoding.word_index)
    if encoding.labels is not None:
        arrays["labels"], _ = _ragged(encoding.labels)
    arrays["example_index"] = np.asarray(encoding.example_index, dtype=np.int64)
    arrays["word_counts"] = np.asarray(encoding.word_counts, dtype=np.int64)
    arrays["stats"] = np.asarray([encoding.windowed_examples, encoding.replaced_words, encoding.long_words],
                                 dtype=np.int64)
    arrays["first_long_word"] = np.asarray([encoding.first_long_word or ""])  # a unicode array: no pickle
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_encoding(path: Path) -> Encoding:
    """Read an encoding written by :func:`save_encoding`."""
    with np.load(path, allow_pickle=False) as data:
        offsets = data["offsets"]
        return Encoding(
            input_ids=_unragged(data["input_ids"], offsets),
            labels=_unragged(data["labels"], offsets) if "labels" in data.files else None,
            word_index=_unragged(data["word_index"], offsets),
            example_index=data["example_index"].tolist(),
            word_counts=data["word_counts"].tolist(),
            windowed_examples=int(data["stats"][0]),
            replaced_words=int(data["stats"][1]),
            long_words=int(data["stats"][2]),
            first_long_word=str(data["first_long_word"][0]) or None,
        )


def encode_cached(aligner: Aligner, examples: Sequence[Example], *, labelled: bool | None = None,
                  cache_dir: Path | None = None, overwrite: bool = False, name: str = "data",
                  workers: int | None = None) -> Encoding:
    """``aligner.encode(examples)``, from the cache when the same encoding was made before.

    Args:
        cache_dir: Where entries live (default :func:`default_cache_dir`); caching is off when the
            environment sets ``TAGTUNE_NO_CACHE=1``.
        overwrite: Recompute and replace the entry (upstream's ``--overwrite_cache``).
        name: The split name, for the log line.
        workers: Tokenize in that many processes (upstream's ``--preprocessing_num_workers``).
    """
    if labelled is None:
        labelled = aligner.label2id is not None and all(e.tags is not None for e in examples)
    if os.environ.get("TAGTUNE_NO_CACHE") == "1":
        return encode_in_processes(aligner, examples, labelled, workers or 1)
    start = time.perf_counter()
    key = fingerprint(aligner, examples, labelled)
    path = (cache_dir or default_cache_dir()) / "encodings" / f"{key}.npz"
    if path.is_file() and not overwrite:
        try:
            encoding = load_encoding(path)
        except (OSError, ValueError, KeyError) as error:  # a damaged entry is recomputed, not fatal
            logger.warning("ignoring unreadable cache entry %s (%s)", path, error)
        else:
            logger.info("%s: loaded cached tokenization of %d sentences from %s in %.2f s (tokenization skipped)",
                        name, len(examples), path, time.perf_counter() - start)
            return encoding
    encoding = encode_in_processes(aligner, examples, labelled, workers or 1)
    tokenized = time.perf_counter() - start
    try:
        save_encoding(path, encoding)
    except OSError as error:
        logger.warning("could not write the tokenization cache %s (%s)", path, error)
    logger.info("%s: tokenized %d sentences into %d windows in %.2f s (cached as %s)",
                name, len(examples), len(encoding), tokenized, path)
    return encoding


_JOB: tuple[Aligner, Sequence[Example], bool] | None = None  # what forked workers encode (inherited, not pickled)


def _encode_part(bounds: tuple[int, int]) -> Encoding:
    aligner, examples, labelled = _JOB  # type: ignore[misc]
    return aligner.encode(examples[bounds[0]:bounds[1]], labelled=labelled)


def encode_in_processes(aligner: Aligner, examples: Sequence[Example], labelled: bool, workers: int) -> Encoding:
    """``aligner.encode(examples)`` in ``workers`` forked processes, each a run of whole documents (document
    context never crosses a part), the parts joined in order: the same encoding as one process gives."""
    global _JOB
    if workers <= 1 or len(examples) < 2 * workers:
        return aligner.encode(examples, labelled=labelled)
    import math
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tagtune.evaluate import document_chunks

    parts = list(document_chunks(examples, math.ceil(len(examples) / workers)))
    _JOB = (aligner, examples, labelled)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            encodings = list(pool.map(_encode_part, parts))
    finally:
        _JOB = None
    joined = Encoding(labels=[] if labelled else None)
    for (start, _), part in zip(parts, encodings, strict=True):
        joined.input_ids += part.input_ids
        joined.word_index += part.word_index
        joined.example_index += [start + i for i in part.example_index]
        joined.word_counts += part.word_counts
        if joined.labels is not None:
            joined.labels += part.labels or []
        joined.windowed_examples += part.windowed_examples
        joined.replaced_words += part.replaced_words
        joined.long_words += part.long_words
        joined.first_long_word = joined.first_long_word or part.first_long_word
    return joined
