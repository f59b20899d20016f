from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtune.align import IGNORE_INDEX, Aligner, load_tokenizer, window_bounds
from tagtune.config import AlignConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError
from tagtune.inference import iter_word_scores

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
L2I = {label: i for i, label in enumerate(LABELS)}


@given(n=st.integers(0, 3000), budget=st.integers(2, 600), data=st.data())
@settings(max_examples=300, deadline=None)
def test_window_cores_tile_the_sequence(n: int, budget: int, data) -> None:
    stride = data.draw(st.integers(0, budget // 2))
    bounds = window_bounds(n, budget, stride)
    owned = []
    for start, end, core_start, core_end in bounds:
        assert 0 <= start <= core_start <= core_end <= end <= n
        assert end - start <= budget
        owned.extend(range(core_start, core_end))
    assert owned == list(range(n))


def test_first_subtoken_is_labelled_rest_ignored(tiny_bert_dir) -> None:
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=32), L2I)
    example = Example(("angela", "merkelx", "visited", "paris"), ("B-PER", "I-PER", "O", "B-LOC"))
    enc = aligner.encode([example])
    assert len(enc) == 1
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[1:4] == ["angela", "merkel", "##x"]  # "merkelx" is split into two pieces
    labelled = [(t, LABELS[label]) for t, label in zip(tokens, enc.labels[0]) if label != IGNORE_INDEX]
    assert labelled == [("angela", "B-PER"), ("merkel", "I-PER"), ("visited", "O"), ("paris", "B-LOC")]
    assert [w for w in enc.word_index[0] if w >= 0] == [0, 1, 2, 3]


def test_label_all_tokens_continues_b_as_i(tiny_bert_dir) -> None:
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=32, label_all_tokens=True), L2I)
    enc = aligner.encode([Example(("xyz", "paris"), ("B-PER", "B-LOC"))])
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    assert tokens == ["[CLS]", "x", "##y", "##z", "paris", "[SEP]"]
    assert [LABELS[i] if i >= 0 else None for i in enc.labels[0]] == [None, "B-PER", "I-PER", "I-PER", "B-LOC", None]
    assert enc.word_index[0] == [-1, 0, -1, -1, 1, -1]


def test_byte_level_bpe_gets_prefix_space(tiny_roberta_dir) -> None:
    tokenizer = load_tokenizer(str(tiny_roberta_dir))
    assert tokenizer.add_prefix_space
    aligner = Aligner(tokenizer, AlignConfig(max_length=32), L2I)
    enc = aligner.encode([Example(("Angela", "Merkel", "visited", "Paris"), ("B-PER", "I-PER", "O", "B-LOC"))])
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids[0])
    firsts = [t for t, w in zip(tokens, enc.word_index[0]) if w >= 0]
    assert all(t.startswith("Ġ") for t in firsts), firsts
    assert [LABELS[x] for x in enc.labels[0] if x != IGNORE_INDEX] == ["B-PER", "I-PER", "O", "B-LOC"]


@pytest.mark.parametrize("word", ["\u200b", "\x07", "\u200d\u200b", "\ufeff"])
def test_word_without_subtokens_still_gets_a_position(tiny_bert_dir, word: str) -> None:
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=32), L2I)
    enc = aligner.encode([Example(("paris", word, "london"), ("B-LOC", "O", "B-LOC"))])
    assert [w for w in enc.word_index[0] if w >= 0] == [0, 1, 2]
    assert enc.replaced_words == 1


def test_thousand_word_sentence_is_windowed_not_truncated(tiny_bert_dir) -> None:
    rng = np.random.default_rng(0)
    words = tuple(rng.choice(["paris", "angela", "xyzzy", "the", "merkel", "qqq"], size=1000))
    tags = tuple(rng.choice(LABELS, size=1000))
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=64, stride=16), L2I)
    enc = aligner.encode([Example(words, tags), Example(("paris",), ("B-LOC",))])
    assert enc.windowed_examples == 1
    assert all(len(ids) <= 64 for ids in enc.input_ids)
    seen: dict[int, str] = {}
    for row, (ids, labels, index) in enumerate(zip(enc.input_ids, enc.labels, enc.word_index)):
        if enc.example_index[row] != 0:
            continue
        for label, w in zip(labels, index):
            if w >= 0:
                assert w not in seen, f"word {w} predicted twice"
                seen[w] = LABELS[label]
            else:
                assert label == IGNORE_INDEX
    assert [seen[i] for i in range(1000)] == list(tags)


def test_document_context_carries_no_labels(tiny_bert_dir) -> None:
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=40, context_size=8), L2I)
    doc = [Example(("angela", "merkel"), ("B-PER", "I-PER"), doc="d1"),
           Example(("visited", "paris"), ("O", "B-LOC"), doc="d1"),
           Example(("the", "london"), ("O", "B-LOC"), doc="d2")]
    enc = aligner.encode(doc)
    middle = tokenizer.convert_ids_to_tokens(enc.input_ids[1])
    assert middle == ["[CLS]", "angela", "merkel", "visited", "paris", "[SEP]"]
    assert enc.word_index[1] == [-1, -1, -1, 0, 1, -1]
    assert [x for x in enc.labels[1]] == [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, L2I["O"], L2I["B-LOC"], IGNORE_INDEX]
    # the other document's sentence sees no context from d1
    assert tokenizer.convert_ids_to_tokens(enc.input_ids[2]) == ["[CLS]", "the", "london", "[SEP]"]


def test_stride_too_large_is_a_config_error(tiny_bert_dir) -> None:
    with pytest.raises(ConfigError, match="--stride 40"):
        Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=32, stride=40), L2I)


def test_streaming_scores_come_back_per_word(tiny_bert_dir) -> None:
    """A fake model whose logits encode the token id shows each word gets its first sub-token's row."""
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=16, stride=4))
    rng = np.random.default_rng(1)
    examples = [Example(tuple(rng.choice(["paris", "xyzzy", "the", "qq"], size=n))) for n in (3, 40, 1, 17, 0)]
    enc = aligner.encode(examples)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = torch.full((*ids.shape, 200), -1e4)
        logits.scatter_(2, ids.unsqueeze(-1), 0.0)
        return logits

    got = dict(iter_word_scores(forward, enc, 200, pad_id=0, batch_size=3))
    assert sorted(got) == [0, 1, 2, 3, 4]
    for index, example in enumerate(examples):
        words = tokenizer([list(example.tokens)], is_split_into_words=True, add_special_tokens=False) if example.tokens else None
        expected = []
        if words is not None:
            seen = set()
            for tid, w in zip(words["input_ids"][0], words.word_ids(0)):
                if w not in seen:
                    seen.add(w)
                    expected.append(tid)
        assert list(np.argmax(got[index], axis=-1)) == expected
