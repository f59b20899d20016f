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
    for row, (_ids, labels, index) in enumerate(zip(enc.input_ids, enc.labels, enc.word_index)):
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


# ---------------------------------------------------------------- words longer than a window

TOKENIZERS = ["tiny_bert_dir", "tiny_roberta_dir", "tiny_xlmr_dir"]  # WordPiece, byte-level BPE, Unigram


def subtoken_count(tokenizer, word: str) -> int:
    return len(tokenizer([[word]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0])


def word_of(tokenizer, k: int) -> str:
    """A URL-like word of exactly ``k`` sub-tokens for ``tokenizer``."""
    for m in range(max(0, k // 2 - 3), k + 2):
        for word in ("a-" * m, "a-" * m + "a"):
            if word and subtoken_count(tokenizer, word) == k:
                return word
    raise AssertionError(f"no word of {k} sub-tokens")


def sentence_with(tokenizer, k: int, inside: bool) -> Example:
    """A word of ``k`` sub-tokens, alone or in the middle of a sentence of several windows."""
    long = word_of(tokenizer, k)
    if not inside:
        return Example((long,), ("B-PER",), origin="t.txt:7")
    left = tuple(["paris", "visited"] * 15)
    right = tuple(["the", "london"] * 15)
    return Example((*left, long, *right), ("O",) * len(left) + ("B-PER",) + ("O",) * len(right), origin="t.txt:7")


def assert_each_word_once(enc, examples: list[Example], all_tokens: bool = False) -> None:
    """Every word owned (and labelled, with its tag) by exactly one window; no other position labelled
    (unless ``all_tokens``)."""
    owned: dict[tuple[int, int], str] = {}
    for row, index in enumerate(enc.example_index):
        for position, w in enumerate(enc.word_index[row]):
            if w >= 0:
                assert (index, w) not in owned, f"word {w} of example {index} owned twice"
                owned[(index, w)] = LABELS[enc.labels[row][position]] if enc.labels is not None else ""
            elif enc.labels is not None and not all_tokens:
                assert enc.labels[row][position] == IGNORE_INDEX
    expected = {(i, w): tag for i, e in enumerate(examples) for w, tag in enumerate(e.tags or ())}
    assert owned == expected


def fake_forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits that encode the token id, so that a word's scores show which sub-token gave them."""
    logits = torch.full((*ids.shape, 1200), -1e4)
    logits.scatter_(2, ids.unsqueeze(-1), 0.0)
    return logits


@pytest.mark.parametrize("model", TOKENIZERS)
@pytest.mark.parametrize("max_length", [16, 64])
@pytest.mark.parametrize("size", ["window-1", "window", "window+1", "10x window"])
@pytest.mark.parametrize("inside", [False, True], ids=["alone", "in a long sentence"])
def test_word_longer_than_a_window_gets_one_label_and_one_prediction(request, model: str, max_length: int,
                                                                    size: str, inside: bool) -> None:
    tokenizer = load_tokenizer(str(request.getfixturevalue(model)))
    aligner = Aligner(tokenizer, AlignConfig(max_length=max_length), L2I)
    window = aligner.budget  # sub-tokens of a window, special tokens aside
    k = {"window-1": window - 1, "window": window, "window+1": window + 1, "10x window": 10 * window}[size]
    examples = [sentence_with(tokenizer, k, inside), Example(("angela", "merkel"), ("B-PER", "I-PER"))]
    enc = aligner.encode(examples)
    assert all(len(ids) <= max_length for ids in enc.input_ids)
    assert_each_word_once(enc, examples)
    assert enc.long_words == 1 and aligner.word_cap == window // 2
    long_index = examples[0].tokens.index(word_of(tokenizer, k))
    word = examples[0].tokens[long_index]
    shown = repr(word) if len(word) <= 40 else repr(word[:37] + "...")
    assert enc.first_long_word == f"t.txt:7 word {long_index + 1} {shown}, {k} sub-tokens"
    # The first sub-token of the long word gives its prediction, whatever the arrival order of windows.
    first_id = tokenizer([[examples[0].tokens[long_index]]], is_split_into_words=True,
                         add_special_tokens=False)["input_ids"][0][0]
    for aggregation in ("first", "average", "max"):
        sub = aligner.encode(examples, labelled=False, subtokens=aggregation != "first")
        for batch_size in (1, 3):
            got = dict(iter_word_scores(fake_forward, sub, 1200, pad_id=aligner.pad_id, batch_size=batch_size,
                                        aggregation=aggregation))  # type: ignore[arg-type]
            assert sorted(got) == [0, 1]
            assert [len(got[i]) for i in (0, 1)] == [len(e.tokens) for e in examples]
            if aggregation == "first":
                assert int(np.argmax(got[0][long_index])) == first_id


@pytest.mark.parametrize("model", TOKENIZERS)
def test_words_up_to_half_a_window_are_kept_whole(request, model: str) -> None:
    tokenizer = load_tokenizer(str(request.getfixturevalue(model)))
    aligner = Aligner(tokenizer, AlignConfig(max_length=32, label_all_tokens=True), L2I)
    cap = aligner.word_cap
    for k, cut in ((cap, 0), (cap + 1, 1)):
        example = Example(("paris", word_of(tokenizer, k), "london"), ("B-LOC", "B-PER", "B-LOC"))
        enc = aligner.encode([example], subtokens=True)
        assert enc.long_words == cut
        assert len(enc.input_ids[0]) == len(aligner.specials) + subtoken_count(tokenizer, "paris") + min(k, cap) + \
            subtoken_count(tokenizer, "london")
        # label_all_tokens: the kept sub-tokens of the word continue its tag; the first carries it.
        labels = [LABELS[x] for x in enc.labels[0] if x != IGNORE_INDEX]
        assert labels.count("B-PER") == 1 and labels.count("I-PER") == min(k, cap) - 1
        assert len(enc.token_words[0]) == len(enc.token_offsets[0]) == len(enc.input_ids[0]) - len(aligner.specials)


def test_long_word_cut_in_training_labels_exactly_once_with_label_all_tokens(tiny_bert_dir) -> None:
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=16, stride=4, label_all_tokens=True), L2I)
    example = sentence_with(tokenizer, 200, inside=True)
    enc = aligner.encode([example])
    assert_each_word_once(enc, [example], all_tokens=True)
    assert all(any(label != IGNORE_INDEX for label in labels) for labels in enc.labels)  # no empty window


def test_windows_that_own_no_word_are_not_emitted(tiny_bert_dir) -> None:
    """A window holding only the inside of a long word would be a row without labels (a NaN loss when
    alone in a batch) and, at inference, a row that reopened a finished example."""
    from tagtune.align import _first_positions

    tokenizer = load_tokenizer(str(tiny_bert_dir))
    aligner = Aligner(tokenizer, AlignConfig(max_length=16, stride=7), L2I)
    long = word_of(tokenizer, aligner.word_cap)
    examples = [Example(("the",) * before + (long,) + ("paris",) * after,
                        ("O",) * before + ("B-PER",) + ("B-LOC",) * after)
                for before in range(12) for after in range(12)]
    ids, word_ids, _ = aligner._tokenize_words([e.tokens for e in examples])
    owning_nothing = 0
    for words in word_ids:
        firsts = set(_first_positions(words).values())
        bounds = window_bounds(len(words), aligner.budget, aligner.stride)
        owning_nothing += sum(not firsts & set(range(core_start, core_end)) for _, _, core_start, core_end in bounds)
    assert owning_nothing  # the case is there...
    enc = aligner.encode(examples)
    assert all(any(w >= 0 for w in row) for row in enc.word_index)  # ... and not emitted
    assert_each_word_once(enc, examples)


def test_collector_ignores_a_window_that_owns_nothing_after_completion() -> None:
    from tagtune.align import WordCollector

    collector = WordCollector([2], 3)
    scores = np.zeros((4, 3), dtype=np.float32)
    assert collector.add(0, np.array([-1, 0, 1, -1]), scores) is not None
    assert collector.add(0, np.array([-1, -1, -1, -1]), scores) is None
    assert collector.pending() == 0


def test_cap_words_doctest_cases() -> None:
    from tagtune.align import _cap_words

    assert _cap_words([0, 0, 0, 1, 2, 2], 1) == ([0, 3, 4], [(0, 3), (2, 2)])
    assert _cap_words([0, 1, 2], 1) == ([0, 1, 2], [])
    assert _cap_words([], 3) == ([], [])
