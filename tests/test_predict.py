from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tagtune
from tagtune.align import Aligner, WordCollector, load_tokenizer
from tagtune.config import AlignConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError, ModelLoadError
from tagtune.predict import PredictConfig, Tagger, pretokenize, word_spans

TRICKY_TEXTS = [
    "Angela Merkel visited Paris, then Paris again; Merkel met Merkel.",
    "the the the paris paris , , london london",
    "Zürich café naïve São Paulo Ελλάδα Москва",
    "Zu\u0308rich (decomposed) and Mer\u200bkel, \u200bParis\u200b, Ber\u00adlin \ufeffLondon",
    "東京 and 北京; 東京!",
    "emoji 😀 in 👍🏽 text 🇩🇪 with 👨\u200d👩\u200d👧 family",
    "multiple   spaces\tand\ttabs\n\nand\r\nnew lines   ",
    "Peter Blackburn's club won 2-1 against 1,000 U.S. teams... (really?) [yes] \"quoted\"",
    "",
    "   \n\t ",
    "x",
]


def test_pretokenize_spans_cover_every_visible_character() -> None:
    for text in TRICKY_TEXTS:
        spans = pretokenize(text)
        covered = set()
        for start, end in spans:
            assert 0 <= start < end <= len(text)
            assert not text[start].isspace() and not text[end - 1].isspace()
            covered.update(range(start, end))
        assert all(text[i].isspace() or i in covered or not text[i].isprintable() for i in range(len(text))), text


def test_pretokenize_keeps_conll_style_words_whole() -> None:
    text = "U.S. German-born O'Neill AT&T 1,000 3.5 Mr. Smith's car, (Reuters)."
    assert [text[s:e] for s, e in pretokenize(text)] == [
        "U.S.", "German-born", "O'Neill", "AT&T", "1,000", "3.5", "Mr.", "Smith", "'s", "car", ",", "(", "Reuters",
        ")", "."]


def test_word_spans_join_with_spaces() -> None:
    assert word_spans(["a", "bc", ""]) == ("a bc ", [(0, 1), (2, 4), (5, 5)])


@pytest.mark.parametrize("aggregation", ["first", "average", "max", "simple"])
def test_entity_text_is_the_original_slice(tiny_ner_dir, aggregation: str) -> None:
    tagger = tagtune.load(tiny_ner_dir, aggregation=aggregation, precision="fp32")
    predictions = list(tagger.predict(TRICKY_TEXTS))
    assert [p.text for p in predictions] == TRICKY_TEXTS
    found = 0
    for text, prediction in zip(TRICKY_TEXTS, predictions):
        assert len(prediction.tags) == len(prediction.words) == len(pretokenize(text))
        for entity in prediction.entities:
            assert entity.text == text[entity.start : entity.end]
            assert entity.text == entity.text.strip() and entity.text
            assert 0.0 < entity.score <= 1.0
            found += 1
    assert found > 10  # the random head tags plenty, so the offsets are exercised


def test_pipeline_simple_equality(tiny_ner_dir) -> None:
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(tiny_ner_dir), aggregation_strategy="simple", device="cpu")
    tagger = tagtune.load(tiny_ner_dir, aggregation="simple", precision="fp32")
    texts = [t for t in TRICKY_TEXTS if "👍🏽" not in t]  # BERT keeps "hi😀"-like runs whole, see the next test
    ours = tagger(texts)
    total = 0
    for text, got in zip(texts, ours):
        expected = pipe(text)
        assert [(e.start, e.end, e.label) for e in got] == [(e["start"], e["end"], e["entity_group"]) for e in expected], text
        assert np.allclose([e.score for e in got], [float(e["score"]) for e in expected], atol=1e-4)
        total += len(expected)
    assert total > 10


@pytest.mark.parametrize("aggregation", ["first", "average", "max"])
def test_word_aggregations_equal_the_pipeline_where_words_agree(tiny_ner_dir, aggregation: str) -> None:
    # Where tagtune's words are the tokenizer's pre-tokens (no "U.S.", "1,000", ...), the word
    # strategies give the pipeline's entities when decoding per word as it does (argmax).
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(tiny_ner_dir), aggregation_strategy=aggregation, device="cpu")
    tagger = tagtune.load(tiny_ner_dir, aggregation=aggregation, precision="fp32", decoding="argmax")
    texts = ["angela merkelx visited parisian cafés, then london.", "the qqq brussels reuters zzz berlin xyz",
             "peter blackburn's club beat tokyo 2 1 !"]
    for text in texts:
        expected = [(e["start"], e["end"], e["entity_group"]) for e in pipe(text)]
        assert [(e.start, e.end, e.label) for e in tagger(text)] == expected, text


def test_single_text_and_list_calls(tiny_ner_dir) -> None:
    tagger = tagtune.load(tiny_ner_dir, precision="fp32")
    one = tagger("Angela Merkel visited Paris.")
    assert isinstance(one, list) and all(isinstance(e, tagtune.Entity) for e in one)
    assert tagger(["Angela Merkel visited Paris.", ""]) == [one, []]
    with pytest.raises(ConfigError, match="list of texts"):
        list(tagger.predict("a string"))
    with pytest.raises(ConfigError, match="text #1 is a int"):
        list(tagger.predict(["ok", 3]))


class TableForward:
    """A context-free fake model: each token id has fixed logits (I-PER for names, I-LOC for places)."""

    def __init__(self, tokenizer, labels: list[str]):
        vocab = tokenizer.get_vocab()
        self.table = torch.zeros(len(vocab), len(labels))
        self.table[:, labels.index("O")] = 5
        for word, label in {"angela": "I-PER", "merkel": "I-PER", "new": "I-LOC", "york": "I-LOC",
                            "city": "I-LOC", "paris": "I-LOC"}.items():
            self.table[vocab[word], labels.index(label)] = 10
            self.table[vocab[word], labels.index("B" + label[1:])] = 8
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.table[input_ids]


def _table_tagger(tiny_ner_dir, **options) -> tuple[Tagger, TableForward]:
    from tagtune.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(tiny_ner_dir)
    forward = TableForward(checkpoint.tokenizer, checkpoint.labels)
    return Tagger(checkpoint, forward, PredictConfig(precision="fp32", **options)), forward


def test_twenty_thousand_word_document_is_tagged_completely(tiny_ner_dir) -> None:
    # 5 words a sentence, 4,000 sentences: every "angela merkel" and "new york city" must come out whole,
    # also where a window boundary cuts through it (windows of 32 sub-tokens, stride 8).
    text = " ".join(["Angela Merkel left New York City ."] * 2500 + ["x"] * 2500)
    assert len(pretokenize(text)) == 20_000
    tagger, forward = _table_tagger(tiny_ner_dir, max_length=32, stride=8, batch_size=64)
    prediction = next(tagger.predict([text]))
    assert len(prediction.tags) == 20_000
    assert forward.calls > 10  # many windows, many batches
    texts = [e.text for e in prediction.entities]
    assert texts == ["Angela Merkel", "New York City"] * 2500
    labels = {e.label for e in prediction.entities}
    assert labels == {"PER", "LOC"}
    assert all(text[e.start : e.end] == e.text for e in prediction.entities)


def test_long_entity_across_many_windows_stays_one(tiny_ner_dir) -> None:
    text = "go to " + " ".join(["New York"] * 100) + " now"
    for aggregation in ("first", "average", "max", "simple"):
        tagger, _ = _table_tagger(tiny_ner_dir, max_length=16, stride=4, aggregation=aggregation)
        entities = tagger(text)
        assert [(e.start, e.end, e.label) for e in entities] == [(6, len(text) - 4, "LOC")], aggregation


def test_real_model_long_document_every_word_tagged(tiny_ner_dir) -> None:
    words = ["angela", "merkel", "visited", "paris", "qqq", ",", "new", "york"] * 2500
    tagger = tagtune.load(tiny_ner_dir, precision="fp32", max_length=128)
    prediction = next(tagger.predict([" ".join(words)]))
    assert prediction.tokens == words
    assert len(prediction.tags) == 20_000


def test_streaming_keeps_input_order_with_small_chunks(tiny_ner_dir) -> None:
    texts = [f"text {i} " + "paris " * (i % 7) for i in range(60)]
    tagger = tagtune.load(tiny_ner_dir, precision="fp32", chunk_words=25, batch_size=4)
    streamed = [p.text for p in tagger.predict(iter(texts))]
    assert streamed == texts


def test_predict_words_offsets_refer_to_joined_words(tiny_ner_dir) -> None:
    tagger = tagtune.load(tiny_ner_dir, precision="fp32")
    prediction = next(tagger.predict_words([["EU", "rejects", "German", "call"]]))
    assert prediction.text == "EU rejects German call"
    assert prediction.words == [(0, 2), (3, 10), (11, 17), (18, 22)]


def test_bf16_gives_the_same_tags_on_a_sharp_model(tiny_ner_dir) -> None:
    fp32 = tagtune.load(tiny_ner_dir, precision="fp32")
    bf16 = tagtune.load(tiny_ner_dir, precision="bf16")
    assert bf16.precision == "bf16"
    a = [p.tags for p in fp32.predict(TRICKY_TEXTS)]
    b = [p.tags for p in bf16.predict(TRICKY_TEXTS)]
    same = sum(x == y for s, t in zip(a, b) for x, y in zip(s, t))
    assert same / sum(len(s) for s in a) > 0.9


def test_collector_aggregations_match_the_pipeline_definitions() -> None:
    # Word 0 has sub-tokens 0-1, word 1 has sub-token 2.
    probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    words = [np.array([0, 0, 1])]
    for aggregation, expected in [("average", [[0.35, 0.65], [0.7, 0.3]]), ("max", [[0.1, 0.9], [0.7, 0.3]]),
                                  ("none", probs)]:
        collector = WordCollector([2], 2, aggregation, words)  # type: ignore[arg-type]
        # Two windows, arriving out of order, each giving part of the sub-tokens.
        assert collector.add(0, np.array([-1, -1]), np.log(probs[1:3]), np.array([-1, 2])) is None
        done = collector.add(0, np.array([0, -1]), np.log(probs[0:2]), np.array([0, 1]))
        assert np.allclose(np.exp(done), expected, atol=1e-6), aggregation
    with pytest.raises(ConfigError, match="subtokens=True"):
        WordCollector([2], 2, "max")


def test_subtoken_encoding_records_offsets(tiny_bert_dir) -> None:
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=8, stride=2))
    encoding = aligner.encode([Example(("xyz", "\u200b", "paris"))], subtokens=True)
    assert encoding.token_words[0].tolist() == [0, 0, 0, 1, 2]
    assert encoding.token_offsets[0].tolist() == [[0, 1], [1, 2], [2, 3], [0, 1], [0, 5]]
    owned = sorted(i for row in encoding.token_index for i in row if i >= 0)
    assert owned == [0, 1, 2, 3, 4]


def test_load_errors(tmp_path, tiny_ner_dir) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        tagtune.load(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="tagtune export"):
        tagtune.load(tiny_ner_dir, backend="onnx")
    with pytest.raises(ConfigError, match="unknown option"):
        tagtune.load(tiny_ner_dir, aggregate="max")
    with pytest.raises(ConfigError, match="--aggregation 'mean'"):
        tagtune.load(tiny_ner_dir, aggregation="mean")


def test_cli_predict_formats(tiny_ner_dir, tmp_path) -> None:
    from tagtune.cli import app

    lines = tmp_path / "docs.txt"
    lines.write_text("Angela Merkel visited Paris.\n\nnew york city\n", encoding="utf-8")
    records = tmp_path / "docs.jsonl"
    records.write_text(json.dumps({"id": 3, "text": "Merkel in Paris"}) + "\n", encoding="utf-8")
    conll = tmp_path / "words.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nPeter B-PER\n", encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), str(lines), str(records), "--text", "Berlin !",
                                 "-o", str(out), "--quiet", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["Berlin !", "Angela Merkel visited Paris.", "", "new york city", "Merkel in Paris"]
    assert rows[-1]["id"] == "3"
    assert all(r["text"][e["start"] : e["end"]] == e["text"] for r in rows for e in r["entities"])
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), str(conll), "-f", "conll", "--quiet"])
    assert result.exit_code == 0, result.output
    blocks = [b.split("\n") for b in result.stdout.strip().split("\n\n")]
    assert [[line.split()[:2] for line in b] for b in blocks] == [[["EU", "B-ORG"], ["rejects", "O"]], [["Peter", "B-PER"]]]
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), "--text", "Merkel", "-f", "spacy", "--quiet"])
    assert set(json.loads(result.stdout)) == {"text", "ents"}
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), str(tmp_path / "nope.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_input_is_read_lazily_one_chunk_at_a_time(tiny_ner_dir) -> None:
    consumed = 0

    def texts():
        nonlocal consumed
        for i in range(10_000):
            consumed += 1
            yield f"paris {i}"

    tagger = tagtune.load(tiny_ner_dir, precision="fp32", chunk_words=100)
    stream = tagger.predict(texts())
    first = next(stream)
    assert first.text == "paris 0"
    assert consumed == 50  # one chunk of 100 words, not the whole input


def test_int8_and_auto_precision(tiny_ner_dir) -> None:
    from tagtune.predict import auto_precision

    assert auto_precision("cpu") in ("int8", "fp32")
    int8 = tagtune.load(tiny_ner_dir, precision="int8")
    assert int8.precision == "int8" and int8.metadata()["precision"] == "int8"
    fp32 = [p.tags for p in tagtune.load(tiny_ner_dir, precision="fp32").predict(TRICKY_TEXTS)]
    tags = [p.tags for p in int8.predict(TRICKY_TEXTS)]
    same = sum(a == b for s, t in zip(fp32, tags) for a, b in zip(s, t))
    assert same / sum(len(s) for s in fp32) > 0.9
