"""Words longer than a window, end to end: every input word gets exactly one prediction.

A URL, a base64 blob or a chemical name can have more sub-tokens than fit in one window. For tiny
models of three tokenizer families (WordPiece, byte-level BPE, SentencePiece-style Unigram with a
Metaspace pre-tokenizer), words of window-1, window, window+1 and 10x window sub-tokens, alone and
inside long sentences, go through ``run_ner.py --do_train --do_predict`` (training labels each word
exactly once), ``tagtune evaluate`` and ``tagtune predict`` on CoNLL and CoNLL-U files (and the other
input formats, torch and ONNX), the Accelerate loop and the service; each must give one prediction
line per input word.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, run_console

EXAMPLES = REPO / "examples" / "token-classification"
sys.path.insert(0, str(EXAMPLES))

MAX_LENGTH = 32
SIZES = {"window-1": -1, "window": 0, "window+1": 1}  # and 10x window
TOKENIZERS = ["tiny_bert_dir", "tiny_roberta_dir", "tiny_xlmr_dir"]


def word_of(tokenizer, k: int) -> str:
    """A URL-like word of exactly ``k`` sub-tokens."""
    def count(word: str) -> int:
        return len(tokenizer([[word]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0])

    for m in range(max(0, k // 2 - 3), k + 2):
        for word in ("a-" * m, "a-" * m + "a"):
            if word and count(word) == k:
                return word
    raise AssertionError(f"no word of {k} sub-tokens")


def sentences(tokenizer, window: int) -> list[list[tuple[str, str]]]:
    """Each long word alone, in a short sentence and in a sentence of several windows; plus plain ones."""
    longs = [word_of(tokenizer, window + d) for d in SIZES.values()] + [word_of(tokenizer, 10 * window)]
    out: list[list[tuple[str, str]]] = []
    for long in longs:
        out.append([(long, "B-LOC")])
        out.append([("angela", "B-PER"), ("merkel", "I-PER"), ("visited", "O"), (long, "B-LOC"), ("paris", "B-LOC")])
        out.append([("the", "O"), ("london", "B-LOC")] * 12 + [(long, "O")] + [("john", "B-PER"), ("smith", "I-PER")] * 12)
    out.append([("peter", "B-PER"), ("blackburn", "I-PER"), ("said", "O")])
    return out


def write_conll(path: Path, data: list[list[tuple[str, str]]]) -> Path:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in data), encoding="utf-8")
    return path


def write_conllu(path: Path, data: list[list[tuple[str, str]]]) -> Path:
    blocks = []
    for n, sentence in enumerate(data):
        rows = [f"{i}\t{w}\t_\t{t}\t_\t_\t{0 if i == 1 else 1}\t{'root' if i == 1 else 'dep'}\t_\t_"
                for i, (w, t) in enumerate(sentence, start=1)]
        blocks.append(f"# sent_id = s{n}\n" + "\n".join(rows) + "\n")
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def conll_blocks(text: str) -> list[list[list[str]]]:
    """A CoNLL output as sentences of rows of columns."""
    return [[line.split() for line in block.splitlines()] for block in text.strip("\n").split("\n\n") if block.strip()]


run = run_console  # the name the cases use


@pytest.fixture(autouse=True)
def own_log_handler() -> Iterator[None]:
    # The CLI's log handler writes to the stderr of its time: give each test one on its captured stderr.
    logger = logging.getLogger("tagtune")
    saved = logger.handlers[:]
    logger.handlers.clear()
    yield
    logger.handlers[:] = saved


@pytest.fixture(scope="module", params=TOKENIZERS, ids=["wordpiece", "byte-level-bpe", "unigram-metaspace"])
def trained(request, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``run_ner.py --do_train --do_predict`` on long words; the training encoding is kept for checks."""
    import run_ner

    import tagtune.run
    from tagtune.align import Aligner, load_tokenizer
    from tagtune.config import AlignConfig

    base = request.getfixturevalue(request.param)
    root = tmp_path_factory.mktemp("long-words")
    tokenizer = load_tokenizer(str(base))
    window = Aligner(tokenizer, AlignConfig(max_length=MAX_LENGTH)).budget
    data = sentences(tokenizer, window)
    files = {"train": write_conll(root / "train.conll", data), "test": write_conll(root / "test.conll", data),
             "conllu": write_conllu(root / "test.conllu", data)}
    captured = []
    real = tagtune.run.encode_cached

    def capture(aligner, examples, **kwargs):
        encoding = real(aligner, examples, **kwargs)
        captured.append((aligner, list(examples), encoding))
        return encoding

    out = root / "model"
    argv = ["--model_name_or_path", str(base), "--train_file", str(files["train"]), "--test_file", str(files["test"]),
            "--output_dir", str(out), "--do_train", "--do_predict", "--max_seq_length", str(MAX_LENGTH),
            "--max_steps", "2", "--per_device_train_batch_size", "4", "--save_strategy", "no",
            "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true"]
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(tagtune.run, "encode_cached", capture)
    try:
        assert run(run_ner.main, argv) == 0
    finally:
        monkeypatch.undo()
    return {"root": root, "model": out, "data": data, "files": files, "window": window, "train": captured}


def long_word_count(data: list[list[tuple[str, str]]], cap: int, tokenizer) -> int:
    lengths = [len(tokenizer([[w]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0])
               for s in data for w, _ in s]
    return sum(n > cap for n in lengths)


def test_training_labels_every_word_exactly_once(trained) -> None:
    ((aligner, examples, encoding),) = trained["train"]
    assert [list(zip(e.tokens, e.tags)) for e in examples] == trained["data"]
    labelled: dict[tuple[int, int], str] = {}
    id2label = {i: label for label, i in aligner.label2id.items()}
    for row, index in enumerate(encoding.example_index):
        assert len(encoding.input_ids[row]) <= MAX_LENGTH
        for position, label in enumerate(encoding.labels[row]):
            if label != -100:
                word = encoding.word_index[row][position]
                assert word >= 0 and (index, word) not in labelled
                labelled[(index, word)] = id2label[label]
    assert labelled == {(i, w): tag for i, e in enumerate(examples) for w, tag in enumerate(e.tags)}
    results = json.loads((trained["model"] / "all_results.json").read_text())
    expected = long_word_count(trained["data"], aligner.word_cap, aligner.tokenizer)
    assert expected == 12  # all four sizes are longer than half a window, three sentences each
    assert results["train_long_words"] == results["predict_long_words"] == encoding.long_words == expected
    assert results["predict_words"] == sum(len(s) for s in trained["data"])


def test_do_predict_writes_one_line_per_word(trained) -> None:
    blocks = conll_blocks((trained["model"] / "predictions.txt").read_text(encoding="utf-8"))
    assert [[row[0] for row in block] for block in blocks] == [[w for w, _ in s] for s in trained["data"]]
    assert all(len(row) == 3 for block in blocks for row in block)


@pytest.mark.parametrize("kind", ["test", "conllu"])
def test_evaluate_gives_one_prediction_per_word(trained, kind: str, capsys, caplog) -> None:
    from tagtune.cli import invoke

    out = trained["root"] / f"eval-{kind}"
    code = run(invoke, ["evaluate", str(trained["model"]), str(trained["files"][kind]), "--quiet",
                        "--output_dir", str(out), "--overwrite_output_dir"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)
    assert metrics["eval_words"] == sum(len(s) for s in trained["data"]) and metrics["eval_long_words"] == 12
    blocks = conll_blocks((out / "predictions.txt").read_text(encoding="utf-8"))
    assert [[row[0] for row in block] for block in blocks] == [[w for w, _ in s] for s in trained["data"]]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "sub-tokens cut" in r.getMessage()]
    assert len(warnings) == 1 and "12 words longer than" in warnings[0]
    first_word_line = 1 if kind == "test" else 2  # CoNLL-U: after the sent_id comment
    assert f"first: {trained['files'][kind]}:{first_word_line} word 1 " in warnings[0]


def _predict(trained, source: Path, *flags: str, model: Path | None = None) -> str:
    from tagtune.cli import invoke

    target = trained["root"] / f"pred-{source.name}-{'-'.join(flags)}.out"
    code = run(invoke, ["predict", str(model or trained["model"]), str(source), "--quiet", "-o", str(target), *flags])
    assert code == 0
    return target.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["test", "conllu"])
@pytest.mark.parametrize("aggregation", ["first", "average", "simple"])
def test_predict_word_files_one_tag_per_word(trained, kind: str, aggregation: str) -> None:
    words = [[w for w, _ in s] for s in trained["data"]]
    conll = conll_blocks(_predict(trained, trained["files"][kind], "-f", "conll", "--aggregation", aggregation))
    assert [[row[0] for row in block] for block in conll] == words
    assert all(len(row) == 3 for block in conll for row in block)  # word, gold, predicted
    records = [json.loads(line) for line in _predict(trained, trained["files"][kind], "--aggregation", aggregation)
               .splitlines()]
    assert [r["tokens"] for r in records] == words and [len(r["tags"]) for r in records] == [len(w) for w in words]


def test_predict_other_input_formats_and_onnx(trained) -> None:
    from tagtune.cli import invoke

    root, data = trained["root"], trained["data"]
    words = [[w for w, _ in s] for s in data]
    jsonl = root / "tokens.jsonl"
    jsonl.write_text("".join(json.dumps({"tokens": w}) + "\n" for w in words), encoding="utf-8")
    as_json = root / "tokens.json"
    as_json.write_text(json.dumps([{"tokens": w} for w in words]), encoding="utf-8")
    for source in (jsonl, as_json):
        records = [json.loads(line) for line in _predict(trained, source).splitlines()]
        assert [len(r["tags"]) for r in records] == [len(w) for w in words]
    lines = root / "texts.txt"
    lines.write_text("".join(" ".join(w) + "\n" for w in words), encoding="utf-8")
    assert len(_predict(trained, lines).splitlines()) == len(words)
    onnx = root / "onnx"
    assert run(invoke, ["export", str(trained["model"]), "--format", "onnx", "-o", str(onnx)]) == 0
    for source, flags in ((trained["files"]["test"], ("-f", "conll")), (trained["files"]["conllu"], ("-f", "conll"))):
        conll = conll_blocks(_predict(trained, source, "--backend", "onnx", *flags, model=onnx))
        assert [[row[0] for row in block] for block in conll] == words
    records = [json.loads(line) for line in _predict(trained, jsonl, "--backend", "onnx", model=onnx).splitlines()]
    assert [len(r["tags"]) for r in records] == [len(w) for w in words]


def test_tagger_and_service_on_raw_text(trained) -> None:
    from fastapi.testclient import TestClient

    import tagtune
    from tagtune.serve import ServeConfig, create_app

    tagger = tagtune.load(trained["model"], precision="fp32")
    texts = [" ".join(w for w, _ in s) for s in trained["data"]]
    for prediction in tagger.predict(texts):
        assert len(prediction.tags) == len(prediction.words) > 0
    assert tagger.long_words >= 12
    config = ServeConfig(max_texts=len(texts), max_chars=max(map(len, texts)), max_body_bytes=1 << 20)
    with TestClient(create_app(tagger, config)) as client:
        response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    assert response.json() == {"results": [{"entities": [e.as_dict() for e in tagger(t)]} for t in texts]}


def test_accelerate_loop_labels_and_predicts_every_word(tiny_bert_dir, tmp_path: Path) -> None:
    from tagtune.align import Aligner, load_tokenizer
    from tagtune.config import AlignConfig
    from tagtune.loop import main

    tokenizer = load_tokenizer(str(tiny_bert_dir))
    window = Aligner(tokenizer, AlignConfig(max_length=MAX_LENGTH)).budget
    data = sentences(tokenizer, window)
    train = write_conll(tmp_path / "train.conll", data)
    test = write_conllu(tmp_path / "test.conllu", data)
    out = tmp_path / "loop"
    code = run(main, ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train), "--validation_file",
                      str(train), "--test_file", str(test), "--output_dir", str(out), "--max_length",
                      str(MAX_LENGTH), "--max_train_steps", "2", "--per_device_train_batch_size", "4"])
    assert code == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_long_words"] == results["eval_long_words"] == results["predict_long_words"] == 12
    assert results["predict_words"] == sum(len(s) for s in data)
    blocks = conll_blocks((out / "predictions.txt").read_text(encoding="utf-8"))
    assert [[row[0] for row in block] for block in blocks] == [[w for w, _ in s] for s in data]
