from __future__ import annotations

import logging
from dataclasses import replace

from tagtune.align import Aligner, load_tokenizer
from tagtune.cache import encode_cached, fingerprint
from tagtune.config import AlignConfig
from tagtune.corpus import Example

LABELS = {"O": 0, "B-PER": 1, "I-PER": 2}
EXAMPLES = [Example(("angela", "merkel", "visited"), ("B-PER", "I-PER", "O"), doc="1"),
            Example(("john",) * 50, ("B-PER",) + ("I-PER",) * 49, doc="1"),
            Example(("\u200b", "the"), ("O", "O"))]


def test_second_run_loads_identical_encoding_from_cache(tiny_bert_dir, tmp_path, caplog) -> None:
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=16), LABELS)
    caplog.set_level(logging.INFO, logger="tagtune.cache")
    first = encode_cached(aligner, EXAMPLES, cache_dir=tmp_path)
    assert "tokenized 3 sentences" in caplog.text
    caplog.clear()
    second = encode_cached(aligner, EXAMPLES, cache_dir=tmp_path)
    assert "tokenization skipped" in caplog.text
    assert second == first
    assert second.windowed_examples == 1 and second.replaced_words == 1
    assert len(list((tmp_path / "encodings").glob("*.npz"))) == 1


def test_key_changes_with_everything_the_encoding_depends_on(tiny_bert_dir, tiny_roberta_dir) -> None:
    bert = load_tokenizer(str(tiny_bert_dir))
    base = Aligner(bert, AlignConfig(max_length=16), LABELS)
    key = fingerprint(base, EXAMPLES, True)
    assert fingerprint(Aligner(bert, AlignConfig(max_length=16), LABELS), EXAMPLES, True) == key
    variants = [
        fingerprint(Aligner(bert, AlignConfig(max_length=20), LABELS), EXAMPLES, True),
        fingerprint(Aligner(bert, AlignConfig(max_length=16, label_all_tokens=True), LABELS), EXAMPLES, True),
        fingerprint(Aligner(bert, AlignConfig(max_length=16), {"O": 0, "B-PER": 2, "I-PER": 1}), EXAMPLES, True),
        fingerprint(Aligner(load_tokenizer(str(tiny_roberta_dir)), AlignConfig(max_length=16), LABELS), EXAMPLES, True),
        fingerprint(base, EXAMPLES[:2], True),
        fingerprint(base, [replace(EXAMPLES[0], tags=("O", "O", "O"))] + EXAMPLES[1:], True),
        fingerprint(base, EXAMPLES, False),
    ]
    assert key not in variants and len(set(variants)) == len(variants)


def test_overwrite_and_damaged_entries_recompute(tiny_bert_dir, tmp_path, caplog) -> None:
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=16), LABELS)
    first = encode_cached(aligner, EXAMPLES, cache_dir=tmp_path)
    (entry,) = (tmp_path / "encodings").glob("*.npz")
    entry.write_bytes(b"not an npz file")
    caplog.set_level(logging.INFO, logger="tagtune.cache")
    assert encode_cached(aligner, EXAMPLES, cache_dir=tmp_path) == first
    assert "ignoring unreadable cache entry" in caplog.text
    caplog.clear()
    assert encode_cached(aligner, EXAMPLES, cache_dir=tmp_path, overwrite=True) == first
    assert "tokenized 3 sentences" in caplog.text


def test_preprocessing_workers_give_the_same_encoding(tiny_bert_dir, tmp_path) -> None:
    """--preprocessing_num_workers 3: three processes, each whole documents (document context intact), joined
    in order; exactly the encoding one process makes."""
    from dataclasses import asdict

    words = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    examples = [Example(tuple(words[: 2 + i % 7]), tuple(["B-ORG"] + ["O"] * (1 + i % 7)), doc=str(i // 4))
                for i in range(23)]
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=8, context_size=4),
                      {"O": 0, "B-ORG": 1})
    one = encode_cached(aligner, examples, cache_dir=tmp_path / "a")
    three = encode_cached(aligner, examples, cache_dir=tmp_path / "b", workers=3)
    assert asdict(three) == asdict(one)
    assert one.windowed_examples > 0  # windows and context were really exercised
