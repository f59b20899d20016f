"""Document context through training, saving, loading and prediction (Trainer engine, tiny BERT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "token-classification"))
sys.path.insert(0, str(REPO / "tests"))


@pytest.fixture(scope="module")
def trained(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One tiny model trained with --document_context on CoNLL files with -DOCSTART-, and its training batches."""
    import run_ner

    import tagtune.train
    from test_train import make_sentences, write_conll

    root = tmp_path_factory.mktemp("context")
    files = {"train": write_conll(root / "train.txt", make_sentences(24, 0)),
             "test": write_conll(root / "test.txt", make_sentences(8, 2))}
    batches: list[dict] = []
    inner_call = tagtune.train.CountingCollator.__call__

    def recording_call(self, features):
        batch = inner_call(self, features)
        batches.append({k: v.clone() for k, v in batch.items()})
        return batch

    out = root / "model"
    patch = pytest.MonkeyPatch()
    patch.setattr(tagtune.train.CountingCollator, "__call__", recording_call)
    try:
        run_ner.main(["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train",
                      "--num_train_epochs", "1", "--learning_rate", "5e-3", "--per_device_train_batch_size", "8",
                      "--max_seq_length", "48", "--report_to", "none", "--save_strategy", "no", "--seed", "1",
                      "--use_cpu", "true", "--disable_tqdm", "true", "--document_context",
                      "--train_file", str(files["train"])])
    finally:
        patch.undo()
    return out, files, batches


def test_context_tokens_carry_label_minus_100_in_training_batches(trained) -> None:
    from transformers import AutoTokenizer

    from tagtune.config import DataConfig
    from tagtune.readers import read_file

    out, files, batches = trained
    label2id = json.loads((out / "config.json").read_text())["label2id"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    examples, _ = read_file(files["train"], DataConfig(train_file=files["train"]), split="train")
    # What each sentence alone must contribute: its words' first sub-tokens and their tags, nothing else.
    expected = set()
    for example in examples:
        encoded = tokenizer(list(example.tokens), is_split_into_words=True, add_special_tokens=False)
        firsts, seen = [], set()
        for position, word in enumerate(encoded.word_ids()):
            if word not in seen:
                seen.add(word)
                firsts.append(encoded["input_ids"][position])
        expected.add((tuple(firsts), tuple(label2id[t] for t in example.tags), len(encoded["input_ids"])))
    rows = with_context = 0
    for batch in batches:
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            keep = labels != -100
            labelled = (tuple(ids[keep].tolist()), tuple(labels[keep].tolist()))
            matches = [n for f, t, n in expected if (f, t) == labelled]
            assert matches, "a row's labelled positions are exactly one sentence's words"
            length = int(mask.sum())
            assert length <= 48
            with_context += length > min(matches) + 2  # longer than the sentence and [CLS] [SEP]
            rows += 1
    assert rows == len(examples)
    assert with_context == rows  # every document here has several sentences


def test_saved_config_has_the_context_and_prediction_uses_it(trained) -> None:
    from tagtune.checkpoint import load_checkpoint
    from tagtune.config import DataConfig
    from tagtune.evaluate import evaluate_examples
    from tagtune.inference import model_forward
    from tagtune.readers import read_file

    out, files, _ = trained
    saved = json.loads((out / "tagtune_config.json").read_text())
    assert saved["align"]["context_size"] == 48  # --document_context: up to the whole window
    checkpoint = load_checkpoint(out)
    assert checkpoint.align.context_size == 48
    aligner = checkpoint.aligner()
    assert aligner.config.context_size == 48

    examples, _ = read_file(files["test"], DataConfig(test_file=files["test"]), split="test")
    assert len({e.doc for e in examples}) == 2
    encoding = aligner.encode(examples, labelled=False)
    plain = checkpoint.aligner(context_size=0).encode(examples, labelled=False)
    assert all(len(a) > len(b) for a, b in zip(encoding.input_ids, plain.input_ids))
    # Context positions give no prediction: one owning position per word, none elsewhere.
    for row, index in zip(encoding.word_index, encoding.example_index):
        owned = [w for w in row if w >= 0]
        assert sorted(owned) == list(range(len(examples[index].tokens)))
    result = evaluate_examples(model_forward(checkpoint.model), aligner, examples, checkpoint.decoder())
    assert [len(tags) for tags in result.predictions] == [len(e.tokens) for e in examples]


def test_context_size_flag_is_saved_as_given(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import run_ner

    from tagtune.checkpoint import load_checkpoint
    from test_train import make_sentences, write_conll

    train = write_conll(tmp_path / "train.txt", make_sentences(8, 0))
    out = tmp_path / "model"
    run_ner.main(["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train",
                  "--max_steps", "1", "--max_seq_length", "48", "--report_to", "none", "--save_strategy", "no",
                  "--use_cpu", "true", "--disable_tqdm", "true", "--context_size", "8", "--train_file", str(train)])
    assert load_checkpoint(out).align.context_size == 8


def test_negative_context_size_is_refused() -> None:
    from tagtune.errors import ConfigError
    from tagtune.flags import parse_trainer_args

    with pytest.raises(ConfigError, match="--context_size -1 must be 0 or more"):
        parse_trainer_args(["--model_name_or_path", "m", "--output_dir", "o", "--train_file", "x.txt",
                            "--context_size", "-1"])

def test_predict_on_a_conll_file_uses_the_document_context(trained, monkeypatch) -> None:
    """``tagtune predict`` on a CoNLL file passes the -DOCSTART- documents on to the alignment, so a
    context-trained model sees the context there too, and tags exactly as evaluation does."""
    from typer.testing import CliRunner

    from tagtune.align import Aligner
    from tagtune.checkpoint import load_checkpoint
    from tagtune.cli import app
    from tagtune.config import DataConfig
    from tagtune.evaluate import evaluate_examples
    from tagtune.inference import model_forward
    from tagtune.readers import read_file

    out, files, _ = trained
    examples, _ = read_file(files["test"], DataConfig(test_file=files["test"]), split="test")
    checkpoint = load_checkpoint(out)
    evaluated = evaluate_examples(model_forward(checkpoint.model), checkpoint.aligner(), examples,
                                  checkpoint.decoder("argmax")).predictions

    seen_documents: list[str | None] = []
    encode = Aligner.encode

    def recording_encode(self, batch, *args, **kwargs):
        seen_documents.extend(e.doc for e in batch)
        return encode(self, batch, *args, **kwargs)

    monkeypatch.setattr(Aligner, "encode", recording_encode)
    predictions = out.parent / "predicted.conll"
    result = CliRunner().invoke(app, ["predict", str(out), str(files["test"]), "--output", str(predictions),
                                      "--output_format", "conll", "--precision", "fp32", "--decoding", "argmax"])
    assert result.exit_code == 0, result.output
    assert seen_documents == [e.doc for e in examples] and len(set(seen_documents)) == 2
    blocks = [b for b in predictions.read_text().split("\n\n") if b.strip()]
    assert [[line.split()[-1] for line in block.splitlines()] for block in blocks] == evaluated


def test_prediction_chunks_end_between_documents(trained, monkeypatch) -> None:
    from tagtune.config import DataConfig
    from tagtune.predict import Tagger, load
    from tagtune.readers import read_file

    out, files, _ = trained
    examples, _ = read_file(files["test"], DataConfig(test_file=files["test"]), split="test")
    tagger = load(out, precision="fp32", chunk_words=5)  # every sentence alone would fill a chunk
    chunks: list[list[str | None]] = []
    tag_chunk = Tagger._tag_chunk

    def recording(self, docs):
        chunks.append([d.document for d in docs])
        return tag_chunk(self, docs)

    monkeypatch.setattr(Tagger, "_tag_chunk", recording)
    predicted = list(tagger.predict_examples(examples))
    assert [len(p.tags) for p in predicted] == [len(e.tokens) for e in examples]
    assert [len(set(c)) for c in chunks] == [1, 1]  # one chunk per document, not per sentence
    assert sum(map(len, chunks)) == len(examples)
    unlabelled = list(tagger.predict_words([e.tokens for e in examples]))  # no documents: chunks as before
    assert len(chunks) == 2 + len(examples)
    assert [len(p.tags) for p in unlabelled] == [len(e.tokens) for e in examples]
