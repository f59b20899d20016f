"""Span outputs (doccano, labelstudio, brat, spacy) read back through the span readers, and `tagtune predict`
on span files of annotation tools."""

from __future__ import annotations

import bisect
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tagtune.config import DataConfig
from tagtune.predict import Entity, Prediction, pretokenize
from tagtune.predict_io import Document, format_prediction, label_studio_task, write_brat, write_predictions
from tagtune.readers import detect_format, read_corpus, read_file
from tagtune.spans import CharSpan, SpanConfig, example_spans

FORMATS = ("doccano", "labelstudio", "brat", "spacy")
READ_AS = {"doccano": "spans", "labelstudio": "labelstudio", "brat": "brat", "spacy": "spans"}
PREDICTIONS = SpanConfig(annotator="predictions")  # Label Studio pre-annotations are predictions, not annotations


def prediction(text: str, spans: list[tuple[int, int, str]]) -> Prediction:
    entities = [Entity(s, e, label, 0.5 + 0.01 * k, text[s:e]) for k, (s, e, label) in enumerate(spans)]
    return Prediction(text, pretokenize(text), [], entities)


def write_format(fmt: str, pairs: list[tuple[Prediction, Document]], target: Path) -> Path:
    """Write ``pairs`` as ``fmt`` under ``target`` and return the path to read back."""
    target.mkdir(parents=True, exist_ok=True)
    if fmt == "brat":
        write_brat(pairs, target / "brat")
        return target / "brat"
    out = io.StringIO()
    write_predictions(iter(pairs), out, fmt, {"model": "tiny"})  # type: ignore[arg-type]
    path = target / ("out.json" if fmt == "labelstudio" else "out.jsonl")
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def read_back(path: Path) -> dict[str, list[tuple[int, CharSpan]]]:
    """Per document (text): the (split words, spans) of its examples, offsets into the document."""
    examples, _ = read_file(path, DataConfig(), spans=PREDICTIONS)
    found: dict[str, list] = {}
    for example in examples:
        key = example.doc or example.id
        spans = [CharSpan(s.start + example.text_start, s.end + example.text_start, s.label)
                 for s in example_spans(example, example.tags)]  # type: ignore[attr-defined,arg-type]
        found.setdefault(key, []).append((example.split_words, spans))  # type: ignore[attr-defined]
    return found


def expected(text: str, spans: list[tuple[int, int, str]]) -> tuple[int, list[CharSpan]]:
    """Words cut by a span boundary, and the spans as the words they cover give them back (trimmed to their
    words; spans over no word gone)."""
    words = pretokenize(text)
    cuts = sorted({b for s, e, _ in spans for b in (s, e) if any(ws < e and we > s for ws, we in words)})
    split = sum(1 for ws, we in words if bisect.bisect_right(cuts, ws) < bisect.bisect_left(cuts, we))
    result = []
    for s, e, label in spans:
        inside = [(max(ws, s), min(we, e)) for ws, we in words if ws < e and we > s]
        if inside:
            result.append(CharSpan(inside[0][0], inside[-1][1], label))
    return split, result


TEXT = st.text(alphabet=st.sampled_from(list("ab cD.,-'é😀\u200b\n")), min_size=1, max_size=40)


@st.composite
def annotated(draw) -> tuple[str, list[tuple[int, int, str]]]:
    text = draw(TEXT.filter(lambda t: bool(pretokenize(t))))
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=8, unique=True).map(sorted))
    labels = draw(st.lists(st.sampled_from(["PER", "LOC"]), min_size=len(cuts) // 2, max_size=len(cuts) // 2))
    return text, [(cuts[2 * k], cuts[2 * k + 1], label) for k, label in enumerate(labels)]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(annotated(), min_size=1, max_size=3))
def test_round_trip_through_each_format(tmp_path_factory, fmt: str, docs) -> None:
    target = tmp_path_factory.mktemp(fmt)
    pairs = [(prediction(text, spans), Document(text=text, id=f"d{k}")) for k, (text, spans) in enumerate(docs)]
    path = write_format(fmt, pairs, target)
    assert detect_format(path) == READ_AS[fmt]
    found = read_back(path)
    keys = [str(k) if fmt == "labelstudio" else f"d{k}" for k in range(len(docs))]  # Label Studio: data.ref_id
    for key, (text, spans) in zip(keys, docs):
        split, want = expected(text, spans)
        got = found.get(key, [])
        assert sum(n for n, _ in got) == split
        assert [s for _, spans_ in got for s in spans_] == want  # == spans when they fall on word boundaries


def test_word_aligned_spans_come_back_exactly(tmp_path: Path) -> None:
    text = "Angela Merkel visited Paris.\nEU rejects German call."
    spans = [(0, 13, "PER"), (22, 27, "LOC"), (29, 31, "ORG"), (40, 46, "MISC")]
    for fmt in FORMATS:
        path = write_format(fmt, [(prediction(text, spans), Document(text=text, id="news"))], tmp_path / fmt)
        got = [s for parts in read_back(path).values() for _, found in parts for s in found]
        assert got == [CharSpan(*s) for s in spans], fmt


def test_label_studio_task_structure(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    text = "Angela Merkel visited Paris."
    task = label_studio_task(prediction(text, [(0, 13, "PER"), (22, 27, "LOC")]), Document(text=text, id="7"), "tiny")
    region = {"type": "object", "required": ["from_name", "to_name", "type", "value"], "properties": {
        "from_name": {"const": "label"}, "to_name": {"const": "text"}, "type": {"const": "labels"},
        "score": {"type": "number"},
        "value": {"type": "object", "required": ["start", "end", "labels"], "properties": {
            "start": {"type": "integer", "minimum": 0}, "end": {"type": "integer"}, "text": {"type": "string"},
            "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1}}}}}
    schema = {"type": "array", "items": {"type": "object", "required": ["data", "predictions"], "properties": {
        "data": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        "predictions": {"type": "array", "items": {"type": "object", "required": ["model_version", "result"],
                                                   "properties": {"model_version": {"type": "string"},
                                                                  "score": {"type": "number"},
                                                                  "result": {"type": "array", "items": region}}}}}}}
    jsonschema.validate([task], schema)
    assert task == {"data": {"text": text, "ref_id": "7"}, "predictions": [{
        "model_version": "tiny", "score": 0.505, "result": [
            {"id": "r0", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 13, "text": "Angela Merkel", "labels": ["PER"]}, "score": 0.5},
            {"id": "r1", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 22, "end": 27, "text": "Paris", "labels": ["LOC"]}, "score": 0.51}]}]}
    empty = label_studio_task(prediction("nothing", []), Document(text="nothing"), "tiny")
    assert empty == {"data": {"text": "nothing"}, "predictions": [{"model_version": "tiny", "result": []}]}


def test_doccano_line_and_empty_label_studio_list() -> None:
    text = "EU rejects"
    line = format_prediction(prediction(text, [(0, 2, "ORG")]), Document(text=text, id="4"), "doccano")
    assert json.loads(line) == {"id": "4", "text": text, "label": [[0, 2, "ORG"]]}
    out = io.StringIO()
    assert write_predictions(iter([]), out, "labelstudio", {"model": "m"}) == 0
    assert json.loads(out.getvalue()) == []


def test_brat_output_names_and_refusals(tmp_path: Path) -> None:
    from tagtune.errors import ConfigError

    pairs = [(prediction("EU", [(0, 2, "ORG")]), Document(text="EU", id=i)) for i in ("../a b", "../a b", None, "x/y")]
    assert write_brat(pairs, tmp_path / "out") == 4
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.ann"))
    assert names == ["a_b-2.ann", "a_b.ann", "doc000003.ann", "x/y.ann"]
    assert (tmp_path / "out" / "a_b.ann").read_text() == "T1\tORG 0 2\tEU\n"
    (tmp_path / "out" / "notes.md").write_text("mine")
    with pytest.raises(ConfigError, match="holds notes.md, which is not brat output"):
        write_brat(pairs, tmp_path / "out")


# ---------------------------------------------------------------- tagtune predict on span files


@pytest.fixture()
def span_inputs(tmp_path: Path) -> dict[str, Path]:
    text = "Angela Merkel visited Paris.\nEU rejects German call."
    (tmp_path / "brat").mkdir()
    (tmp_path / "brat" / "news.txt").write_text(text, encoding="utf-8")
    (tmp_path / "brat" / "news.ann").write_text("T1\tPER 0 13\tAngela Merkel\n", encoding="utf-8")
    ls = [{"id": 9, "data": {"text": text}, "annotations": []}]
    (tmp_path / "ls.json").write_text(json.dumps(ls), encoding="utf-8")
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": 2, "text": text, "label": [[0, 13, "PER"]]}) + "\n", encoding="utf-8")
    (tmp_path / "g.jsonl").write_text(json.dumps({"tokenized_text": text.split(" "), "ner": []}) + "\n", encoding="utf-8")
    return {"brat": tmp_path / "brat", "labelstudio": tmp_path / "ls.json", "doccano": tmp_path / "d.jsonl",
            "gliner": tmp_path / "g.jsonl"}


@pytest.mark.parametrize("fmt", ["doccano", "labelstudio", "brat"])
def test_cli_predict_span_inputs_to_span_outputs(tiny_ner_dir, span_inputs: dict[str, Path], tmp_path: Path,
                                                 fmt: str) -> None:
    from tagtune.cli import app

    runner = CliRunner()
    common = [*map(str, span_inputs.values()), "--quiet", "--precision", "fp32"]
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), *common])
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in result.stdout.splitlines()]
    text = "Angela Merkel visited Paris.\nEU rejects German call."
    assert [r["text"] for r in predicted] == [text] * 4  # brat, Label Studio, Doccano, GLiNER (tokens joined)
    names = ["news", "9", "2", "doc000004"]
    out = tmp_path / f"pre-{fmt}" if fmt == "brat" else tmp_path / f"pre.{'json' if fmt == 'labelstudio' else 'jsonl'}"
    result = runner.invoke(app, ["predict", str(tiny_ner_dir), *common, "-f", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "tagged 4 documents" in result.output
    found = read_back(out)
    keys = names if fmt == "brat" else ["news", "9", "2", "3"] if fmt == "doccano" else ["0", "1", "2", "3"]
    for key, record in zip(keys, predicted):
        want = [CharSpan(e["start"], e["end"], e["label"]) for e in record["entities"]]
        assert [s for split, spans in found[key] for s in spans] == want
        assert sum(split for split, _ in found[key]) == 0  # predicted entities fall on words
    if fmt == "labelstudio":
        tasks = json.loads(out.read_text(encoding="utf-8"))
        assert [t["data"].get("ref_id") for t in tasks] == ["news", "9", "2", None]
        assert {p["model_version"] for t in tasks for p in t["predictions"]} == {tiny_ner_dir.name}
    if fmt == "brat":
        assert sorted(p.stem for p in out.glob("*.ann")) == sorted(names)
        assert (out / "news.txt").read_text(encoding="utf-8") == text


def test_cli_predict_brat_needs_a_folder(tiny_ner_dir, span_inputs: dict[str, Path]) -> None:
    from tagtune.cli import app

    result = CliRunner().invoke(app, ["predict", str(tiny_ner_dir), str(span_inputs["brat"]), "-f", "brat"])
    assert result.exit_code == 2
    assert "--output_format brat writes a .txt and a .ann file per document: pass --output FOLDER" in result.output


def test_trained_span_corpus_reads_like_any_other(tmp_path: Path) -> None:
    """`run_ner.py --train_file data.jsonl` and `tagtune train` read span files through read_corpus."""
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"text": "EU rejects it", "label": [[0, 2, "ORG"]]}) + "\n", encoding="utf-8")
    corpus = read_corpus(DataConfig(train_file=path))
    assert corpus.format == "spans" and corpus.splits["train"][0].tags == ("B-ORG", "O", "O")
