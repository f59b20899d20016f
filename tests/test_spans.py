"""Span-labelled data from annotation tools: detection, conversion to words and tags, exact errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tagtune.config import DataConfig
from tagtune.corpus import Corpus
from tagtune.errors import ConfigError, DataFormatError, LabelSchemeError
from tagtune.labels import prepare_labels
from tagtune.readers import detect_format, read_corpus, read_file
from tagtune.spans import CharSpan, SpanConfig, SpanExample, SpanIssues, example_spans

CFG = DataConfig()
MERKEL = "Angela Merkel visited Paris."
MERKEL_SPANS = [{"start": 0, "end": 13, "label": "PER"}, {"start": 22, "end": 27, "label": "LOC"}]
MERKEL_TAGS = ("B-PER", "I-PER", "O", "B-LOC", "O")


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


def read(path: Path, spans: SpanConfig | None = None, **kwargs) -> list[SpanExample]:
    examples, names = read_file(path, DataConfig(**kwargs), spans=spans)
    assert names is None
    assert all(isinstance(e, SpanExample) for e in examples)
    return examples  # type: ignore[return-value]


def raises(error: type[Exception], path: Path, spans: SpanConfig | None = None, **kwargs) -> str:
    with pytest.raises(error) as info:
        read(path, spans, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def task(text: str, *annotations: list, **extra) -> dict:
    """A Label Studio task whose annotations are lists of (start, end, label)."""
    return {"id": extra.pop("id", 1), "data": {"text": text}, **extra, "annotations": [
        {"id": k, "completed_by": k + 1, "created_at": f"2024-01-0{k + 1}T00:00:00Z",
         "result": [{"from_name": "label", "to_name": "text", "type": "labels",
                     "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}} for s, e, label in spans]}
        for k, spans in enumerate(annotations)]}


def brat(directory: Path, name: str, text: str, ann: str) -> Path:
    write(directory, f"{name}.txt", text)
    return write(directory, f"{name}.ann", ann)


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("a.jsonl", jsonl({"text": MERKEL, "spans": MERKEL_SPANS}), "spans"),
    ("a.jsonl", jsonl({"text": "EU rejects", "label": [[0, 2, "ORG"]]}), "spans"),
    ("a.jsonl", jsonl({"text": "EU rejects", "entities": [{"start_offset": 0, "end_offset": 2, "label": "ORG"}]}),
     "spans"),
    ("a.jsonl", jsonl({"tokenized_text": ["EU", "rejects"], "ner": [[0, 0, "ORG"]]}), "spans"),
    ("a.json", json.dumps([{"text": "EU", "spans": []}]), "spans"),
    ("a.json", json.dumps([{"data": {"text": "EU"}, "annotations": []}], indent=2), "labelstudio"),
    ("export", json.dumps([{"data": {"text": "EU"}, "predictions": []}]), "labelstudio"),
    ("a.ndjson", jsonl({"text": "EU", "tokens": [{"text": "EU"}], "spans": [], "answer": "accept"}), "spans"),
    # Word records stay word records, even with a 'text' or a 'label' column.
    ("a.jsonl", jsonl({"tokens": ["EU"], "label": ["B-ORG"]}), "jsonl"),
    ("a.jsonl", jsonl({"text": "EU", "tokens": ["EU"], "ner_tags": ["B-ORG"]}), "jsonl"),
    ("a.json", json.dumps([{"tokens": ["EU"], "ner_tags": ["B-ORG"]}]), "json"),
])
def test_detect_span_formats(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert detect_format(write(tmp_path, name, content)) == expected


def test_detect_brat(tmp_path: Path) -> None:
    ann = brat(tmp_path / "docs", "d", "EU rejects", "T1\tORG 0 2\tEU\n")
    assert detect_format(ann) == "brat"
    assert detect_format(ann.with_suffix(".txt")) == "brat"
    assert detect_format(tmp_path / "docs") == "brat"
    assert detect_format(write(tmp_path, "plain.txt", "EU B-ORG\n")) == "conll"  # no .ann beside it


def test_unknown_format_lists_span_formats(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spans, labelstudio, brat"):
        read_file(write(tmp_path, "a.jsonl", "{}\n"), CFG, format="xml")


# ---------------------------------------------------------------- conversion


def test_spacy_doccano_gliner_and_json_min_give_the_same_tags(tmp_path: Path) -> None:
    text = "EU rejects German call"
    path = write(tmp_path, "mixed.jsonl", jsonl(
        {"text": text, "spans": [{"start": 0, "end": 2, "label": "ORG"}, {"start": 11, "end": 17, "label": "MISC"}]},
        {"text": text, "label": [[0, 2, "ORG"], [11, 17, "MISC"]]},
        {"text": text, "entities": [{"id": 3, "start_offset": 0, "end_offset": 2, "label": "ORG"},
                                    {"id": 4, "start_offset": 11, "end_offset": 17, "label": "MISC"}]},
        {"text": text, "label": [{"start": 0, "end": 2, "text": "EU", "labels": ["ORG"]},
                                 {"start": 11, "end": 17, "text": "German", "labels": ["MISC"]}]},
        {"tokenized_text": text.split(), "ner": [[0, 0, "ORG"], [2, 2, "MISC"]]},
        {"text": text, "ents": [{"start": 0, "end": 2, "label": "ORG"}, {"start": 11, "end": 17, "label": "MISC"}]},
    ))
    examples = read(path)
    for example in examples:
        assert example.tokens == ("EU", "rejects", "German", "call")
        assert example.tags == ("B-ORG", "O", "B-MISC", "O")
        assert example.spans == (CharSpan(0, 2, "ORG"), CharSpan(11, 17, "MISC"))
        assert example.offsets == ((0, 2), (3, 10), (11, 17), (18, 22))
        assert example.text == text
    assert [e.origin for e in examples] == [f"{path}:{n}" for n in range(1, 7)]


def test_words_are_those_of_pretokenize(tmp_path: Path) -> None:
    from tagtune.predict import pretokenize

    text = "Merkel's U.S. visit (1,000 km)."
    [example] = read(write(tmp_path, "a.jsonl", jsonl({"text": text, "spans": [{"start": 9, "end": 13, "label": "LOC"}]})))
    assert list(example.offsets) == pretokenize(text)
    assert example.tags == ("O", "O", "B-LOC", "O", "O", "O", "O", "O", "O")


def test_ids_documents_and_unlabelled_records(tmp_path: Path) -> None:
    examples = read(write(tmp_path, "a.jsonl", jsonl(
        {"id": "x7", "doc": "d1", "text": MERKEL, "spans": MERKEL_SPANS},
        {"text": "No spans field here."},
    )))
    assert (examples[0].id, examples[0].doc, examples[0].tags) == ("x7", "d1", MERKEL_TAGS)
    assert (examples[1].id, examples[1].doc, examples[1].tags) == ("1", None, None)


def test_json_list_names_records(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", json.dumps([{"text": MERKEL, "spans": MERKEL_SPANS}, {"text": "x", "spans": [
        {"start": 0, "end": 5, "label": "PER"}]}]))
    assert raises(DataFormatError, path).startswith(f"{path} record #1: span #0 [0, 5) PER lies outside the text")


def test_boundary_inside_a_word_splits_it_and_is_counted(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, "split.jsonl", jsonl(
        {"text": "the NewYork office", "spans": [{"start": 7, "end": 11, "label": "LOC"}]},
        {"text": "MerkelBerlin", "spans": [{"start": 0, "end": 6, "label": "PER"}, {"start": 6, "end": 12, "label": "LOC"}]},
    ))
    first, second = read(path)
    assert list(zip(first.tokens, first.tags)) == [("the", "O"), ("New", "O"), ("York", "B-LOC"), ("office", "O")]
    assert list(zip(second.tokens, second.tags)) == [("Merkel", "B-PER"), ("Berlin", "B-LOC")]
    assert (first.split_words, second.split_words) == (1, 1)
    assert example_spans(first, first.tags) == [CharSpan(7, 11, "LOC")]
    corpus = read_corpus(DataConfig(train_file=path))
    assert corpus.format == "spans"
    assert corpus.warnings == [(f"{path}: span boundaries inside a word: the word is split there: 2 (first: {path}:1: "
                               "span #0 [7, 11) LOC 'York' cuts the word 'NewYork')")]


def test_overlapping_spans_are_an_error_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, "o.jsonl", jsonl({"text": MERKEL, "spans": [
        {"start": 0, "end": 13, "label": "ORG"}, {"start": 7, "end": 13, "label": "PER"}]}))
    assert raises(DataFormatError, path) == (
        f"{path}:1: span #0 [0, 13) ORG 'Angela Merkel' overlaps span #1 [7, 13) PER 'Merkel'; fix one of them, or "
        "pass --overlapping_spans longest to keep the longest")


def test_overlaps_keep_the_longest_with_one_counted_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "o.jsonl", jsonl(
        {"text": MERKEL, "spans": [{"start": 7, "end": 13, "label": "PER"}, {"start": 0, "end": 13, "label": "ORG"},
                                   {"start": 22, "end": 27, "label": "LOC"}, {"start": 14, "end": 27, "label": "X"}]},
    ))
    [example] = read(path, SpanConfig(overlapping_spans="longest"))
    assert example.tags == ("B-ORG", "I-ORG", "B-X", "I-X", "O")
    corpus = read_corpus(DataConfig(train_file=path), SpanConfig(overlapping_spans="longest"))
    assert corpus.warnings == [(f"{path}: overlapping spans dropped: --overlapping_spans longest kept the longest: 2 "
                               f"(first: {path}:1: span #0 [7, 13) PER 'Merkel')")]


def test_nested_same_label_and_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.jsonl", jsonl({"text": MERKEL, "label": [[0, 13, "PER"], [0, 13, "PER"], [22, 27, "LOC"]]}))
    [example] = read(path)
    assert example.tags == MERKEL_TAGS
    assert read_corpus(DataConfig(train_file=path)).warnings[0].startswith(f"{path}: the same span given twice, kept once: 1")


def test_empty_blank_and_padded_spans(tmp_path: Path) -> None:
    path = write(tmp_path, "e.jsonl", jsonl({"text": "EU  rejects it", "label": [[0, 0, "ORG"], [2, 4, "X"], [3, 11, "V"]]}))
    [example] = read(path)
    assert example.tags == ("O", "B-V", "O")
    assert example.spans == (CharSpan(4, 11, "V"),)
    warnings = read_corpus(DataConfig(train_file=path)).warnings
    assert [w.split(": ")[1] for w in warnings] == ["empty spans (start == end) dropped", "spans covering only whitespace dropped",
                                                     "spans with leading or trailing whitespace, trimmed to their words"]


@pytest.mark.parametrize(("record", "expected"), [
    ({"text": "EU", "spans": [{"start": 0, "end": 9, "label": "ORG"}]},
     ":1: span #0 [0, 9) ORG lies outside the text (0..2 characters)"),
    ({"text": "EU", "spans": [{"start": -1, "end": 1, "label": "ORG"}]}, ":1: span #0 [-1, 1) ORG lies outside the text"),
    ({"text": "EU rejects", "label": [[5, 2, "ORG"]]}, ":1: span #0 [5, 2) ORG starts after it ends; fix the offsets"),
    ({"text": "EU rejects", "spans": [{"start": 1, "end": 3, "label": "ORG", "text": "EU"}]},
     ":1: span #0 [1, 3) ORG: its text 'EU' differs from the text at those offsets 'U '; the offsets have drifted"),
    ({"text": "EU", "spans": [{"start": "0", "end": 2, "label": "ORG"}]},
     ":1: span #0 start is a string '0', expected a character offset (an integer)"),
    ({"text": "EU", "label": ["positive"]}, ":1: span #0 in 'label' is a string 'positive'; expected [start, end, \"LABEL\"]"),
    ([{"text": "EU", "spans": []}, {"text": 3, "spans": []}], ":2: expected a 'text' string with spans"),
    ({"text": "  ", "spans": []}, ":1: the text has no words ('  '); every example needs at least one word"),
    ({"tokenized_text": ["EU"], "ner": [[0, 3, "ORG"]]}, ":1: span #0 tokens 0..3 lie outside the 1 tokens of 'tokenized_text'"),
    ({"tokenized_text": ["EU", "x"], "ner": [[1, 0, "ORG"]]}, ":1: span #0 starts at token 1 after its last token 0"),
])
def test_bad_spans_name_the_record(tmp_path: Path, record: dict | list, expected: str) -> None:
    path = write(tmp_path, "bad.jsonl", jsonl(*record) if isinstance(record, list) else jsonl(record))
    assert raises(DataFormatError, path).startswith(f"{path}{expected}")


@pytest.mark.parametrize(("label", "expected"), [
    ("", "has the label ''; expected a non-empty string"),
    (None, "has the label None; expected a non-empty string"),
    ("O", "has the label 'O', which means no entity; drop the span or rename the label"),
    ("Person Name", ("has the label 'Person Name', holding whitespace (tags are written in space-separated columns); "
                    "rename it, e.g. 'Person_Name'")),
])
def test_bad_labels(tmp_path: Path, label: object, expected: str) -> None:
    path = write(tmp_path, "l.jsonl", jsonl({"text": "EU", "label": [[0, 2, label]]}))
    assert raises(LabelSchemeError, path) == f"{path}:1: span #0 {expected}"


def test_labels_outside_the_label_names_file(tmp_path: Path) -> None:
    names = write(tmp_path, "names.json", json.dumps(["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]))
    path = write(tmp_path, "l.jsonl", jsonl({"text": "EU", "label": [[0, 2, "ORG"]]}, {"text": "EU", "label": [[0, 2, "ORGG"]]}))
    assert raises(LabelSchemeError, path, label_names_file=names) == (
        f"{path}:2: span #0 has the label 'ORGG', not among the known types (ORG, PER); fix the label or the label list")


def test_non_utf8_and_truncated_json(tmp_path: Path) -> None:
    latin = write(tmp_path, "latin.jsonl", jsonl({"text": "EU", "spans": []}).encode() + b'{"text": "caf\xe9", "spans": []}\n')
    assert raises(DataFormatError, latin).startswith(f"{latin}:2: invalid UTF-8 byte 0xe9")
    cut = write(tmp_path, "cut.jsonl", jsonl({"text": "EU", "spans": []}) + '{"text": "EU", "spans": [{"start": 0, ')
    assert raises(DataFormatError, cut).startswith(f"{cut}:2: invalid JSON")
    cut_json = write(tmp_path, "cut.json", json.dumps([task("EU", [(0, 2, "ORG")])], indent=1)[:-20])
    assert raises(DataFormatError, cut_json, format="labelstudio").startswith(f"{cut_json}:")


def test_prodigy_rejected_answers_are_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", jsonl(
        {"text": MERKEL, "spans": MERKEL_SPANS, "answer": "accept"},
        {"text": "bad", "spans": [], "answer": "reject"},
    ))
    assert [e.tags for e in read(path)] == [MERKEL_TAGS]
    rejected = write(tmp_path, "r.jsonl", jsonl({"text": "bad", "spans": [], "answer": "reject"}))
    assert raises(DataFormatError, rejected) == (f"{rejected}: every record was skipped (first: {rejected}:1: Prodigy "
                                                 "answer 'reject'); expected records with text and spans (Prodigy: accepted answers)")


def test_span_examples_survive_label_preparation(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", jsonl({"text": MERKEL, "spans": MERKEL_SPANS}))
    corpus, scheme, labels = prepare_labels(read_corpus(DataConfig(train_file=path)))
    [example] = corpus.splits["train"]
    assert isinstance(example, SpanExample) and example.spans == (CharSpan(0, 13, "PER"), CharSpan(22, 27, "LOC"))
    assert scheme == "IOB2" and sorted(labels) == ["B-LOC", "B-PER", "I-PER", "O"]
    assert dataclasses.replace(example, tags=None).text == MERKEL
    assert isinstance(corpus, Corpus)


# ---------------------------------------------------------------- Label Studio


def test_label_studio_reads_the_latest_annotation_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "ls.json", json.dumps([
        task(MERKEL, [(0, 6, "PER")], [(0, 13, "PER"), (22, 27, "LOC")], id=10),
        task("EU rejects", id=11),  # not annotated yet
    ]))
    [example] = read(path)
    assert (example.id, example.origin, example.tags) == ("10", f"{path} record #0", MERKEL_TAGS)
    assert read(path, SpanConfig(annotator="first"))[0].tags == ("B-PER", "O", "O", "O", "O")
    assert read(path, SpanConfig(annotator="1"))[0].tags == ("B-PER", "O", "O", "O", "O")
    warnings = read_corpus(DataConfig(train_file=path)).warnings
    assert warnings == [
        (f"{path}: tasks annotated several times: one annotation read per task (--annotator): 1 (first: {path} record #0: "
        "2 annotations, read the latest)"),
        (f"{path}: records skipped (no completed annotation, rejected or cancelled): 1 (first: {path} record #1: no "
        "completed annotation)")]


def test_label_studio_annotator_without_annotations(tmp_path: Path) -> None:
    path = write(tmp_path, "ls.json", json.dumps([task(MERKEL, [(0, 13, "PER")], [(0, 13, "PER")])]))
    assert raises(DataFormatError, path, SpanConfig(annotator="ann@x.org")) == (
        f"{path}: every record was skipped (first: {path} record #0: no completed annotation by 'ann@x.org'); no task has "
        "an annotation by --annotator 'ann@x.org' (annotators found: 1, 2)")


def test_label_studio_cancelled_predictions_and_other_results(tmp_path: Path) -> None:
    record = task(MERKEL, [(0, 13, "PER")], [(22, 27, "LOC")])
    record["annotations"][1]["was_cancelled"] = True
    record["annotations"][0]["result"].append({"type": "choices", "value": {"choices": ["news"]}})
    record["predictions"] = [{"model_version": "m", "result": [{"type": "labels", "from_name": "label", "to_name": "text",
                                                                 "value": {"start": 22, "end": 27, "labels": ["LOC"]}}]}]
    path = write(tmp_path, "ls.json", json.dumps([record]))
    assert read(path)[0].tags == ("B-PER", "I-PER", "O", "O", "O")
    assert read(path, SpanConfig(annotator="predictions"))[0].tags == ("O", "O", "O", "B-LOC", "O")


def test_label_studio_utf16_offsets_of_older_versions(tmp_path: Path) -> None:
    text = "😀 Merkel in Paris"
    record = task(text)
    record["annotations"] = [{"result": [{"type": "labels", "value": {"start": 3, "end": 9, "text": "Merkel", "labels": ["PER"]}}]}]
    [example] = read(write(tmp_path, "ls.json", json.dumps([record])))
    assert example.spans == (CharSpan(2, 8, "PER"),)


def test_label_studio_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "ls.json", json.dumps([{"data": {"body": "EU"}, "annotations": []}]))
    assert raises(DataFormatError, path) == (f"{path} record #0: data.text is null None, expected the task's text; data has 'body': "
                                             "pass --text_column_name")
    assert raises(DataFormatError, path, text_column_name="body") == (
        f"{path}: every record was skipped (first: {path} record #0: no completed annotation); no task has a completed "
        "annotation; annotate some, or read pre-annotations with --annotator predictions")
    text = "EU rejects"
    bad = write(tmp_path, "ls2.json", json.dumps([task(text, [(0, 3, "ORG")])]).replace('"text": "EU "', '"text": "EU"'))
    assert raises(DataFormatError, bad).startswith(f"{bad} record #0: result #0 [0, 3) ORG: its text 'EU' differs")


# ---------------------------------------------------------------- brat


def test_brat_lines_documents_and_offsets(tmp_path: Path) -> None:
    text = "Angela Merkel visited Paris.\n\nEU rejects\nGerman\ncall.\n"
    ann = brat(tmp_path / "corpus", "news", text, "T1\tPER 0 13\tAngela Merkel\nT2\tLOC 22 27\tParis\n"
               "R1\tIn Arg1:T1 Arg2:T2\n#1\tAnnotatorNotes T1\tnote\nT3\tMISC 41 52\tGerman call\nA1\tNeg T3\n")
    examples = read(ann.parent)
    assert [(e.origin, e.doc, e.text_start, e.tags) for e in examples] == [
        (f"{ann.with_suffix('.txt')}:1", "news", 0, MERKEL_TAGS),
        (f"{ann.with_suffix('.txt')}:3", "news", 30, ("O", "O")),
        (f"{ann.with_suffix('.txt')}:4", "news", 41, ("B-MISC", "I-MISC", "O")),  # the span crosses a line break
    ]
    assert examples[2].text == "German\ncall."


def test_brat_errors(tmp_path: Path) -> None:
    ann = brat(tmp_path, "d", "EU rejects German call", "T1\tMISC 11 17;18 22\tGerman call\n")
    assert raises(DataFormatError, ann) == (f"{ann}:1: T1 is a discontinuous span (MISC 11 17;18 22); one span must be one "
                                            "run of words: split it into separate annotations or remove it")
    ann.write_text("T1\tORG 0 2\tEU\nT2\tMISC 11 17\tGermen\n")
    assert raises(DataFormatError, ann) == (f"{ann}:2: T2 [11, 17) MISC: its text 'Germen' differs from the text at those "
                                            "offsets 'German'; the offsets have drifted: re-export or fix them")
    ann.write_text("T1\tORG 0 99\tEU\n")
    assert raises(DataFormatError, ann).startswith(f"{ann}:1: T1 [0, 99) ORG lies outside the text (0..22 characters)")
    ann.write_text("T1\tORG zero 2\tEU\n")
    assert raises(DataFormatError, ann) == f"{ann}:1: expected 'LABEL start end' after T1, found 'ORG zero 2'"
    lone = write(tmp_path, "lone.ann", "T1\tORG 0 2\tEU\n")
    assert raises(DataFormatError, lone) == f"{tmp_path / 'lone.txt'}: no such file; brat data needs both lone.txt and lone.ann"
    latin = brat(tmp_path / "l", "x", "", "")
    latin.with_suffix(".txt").write_bytes(b"caf\xe9\n")
    assert raises(DataFormatError, latin).startswith(f"{latin.with_suffix('.txt')}:1: invalid UTF-8 byte 0xe9")


def test_brat_annotation_conf_names_the_types(tmp_path: Path) -> None:
    write(tmp_path, "annotation.conf", "[entities]\nPER\nORG\n!Abstract\n[relations]\nIn Arg1:PER\n")
    ann = brat(tmp_path / "sub", "d", "EU rejects", "T1\tORGANISATION 0 2\tEU\n")
    assert raises(LabelSchemeError, ann.parent).startswith(
        f"{ann}:1: T1 has the label 'ORGANISATION', not among the known types (ORG, PER)")


# ---------------------------------------------------------------- inspect mode (counting, not raising)


def test_lenient_issues_count_instead_of_raising(tmp_path: Path) -> None:
    from tagtune.readers_spans import read_spans

    path = write(tmp_path, "a.jsonl", jsonl(
        {"text": MERKEL, "spans": [{"start": 0, "end": 13, "label": "ORG"}, {"start": 7, "end": 13, "label": "PER"}]},
        {"text": "EU", "spans": [{"start": 0, "end": 9, "label": "ORG"}, {"start": 0, "end": 2, "label": "ORG", "text": "Eu"}]},
    ))
    issues = SpanIssues(strict=False)
    examples = list(read_spans(path, "spans", CFG, SpanConfig(), issues))
    assert [e.tags for e in examples] == [("B-ORG", "I-ORG", "O", "O", "O"), ("O",)]
    assert dict(issues.counts) == {"overlap": 1, "offset_out_of_range": 1, "text_mismatch": 1}


def test_span_config_checks_its_options() -> None:
    with pytest.raises(ConfigError, match="--overlapping_spans 'merge' is not one of error, longest"):
        SpanConfig(overlapping_spans="merge")  # type: ignore[arg-type]


# ---------------------------------------------------------------- character-span scores and span predictions


def test_char_span_scores_exact_matches() -> None:
    from tagtune.metrics import score_char_spans

    result = score_char_spans([[(0, 13, "PER"), (22, 27, "LOC")], [(0, 2, "ORG")]],
                              [[(0, 13, "PER"), (22, 28, "LOC")], [(0, 2, "ORG"), (3, 5, "ORG")]])
    assert (result["precision"], result["recall"], result["number"]) == (0.5, 2 / 3, 3)
    assert result["per_type"] == {"LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1},
                                  "ORG": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "number": 1},
                                  "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}}
    with pytest.raises(ValueError):
        score_char_spans([[]], [])


def test_span_scores_and_prediction_lines_of_span_examples(tmp_path: Path) -> None:
    from tagtune.corpus import Example
    from tagtune.spans import span_metrics, span_prediction_lines, span_scores

    path = write(tmp_path, "a.jsonl", jsonl(
        {"id": "a", "text": MERKEL, "spans": MERKEL_SPANS},
        {"id": "b", "text": "the NewYork office", "spans": [{"start": 7, "end": 11, "label": "LOC"}]},
    ))
    examples = read(path)
    predicted = [("B-PER", "O", "O", "B-LOC", "O"), ("O", "O", "B-LOC", "O")]
    result = span_scores(examples, predicted)
    assert result is not None and (result["precision"], result["recall"]) == (2 / 3, 2 / 3)
    assert span_scores([Example(("a",), ("O",))], [["O"]]) is None
    assert span_metrics(examples, predicted, "eval_") == {"eval_span_precision": 2 / 3, "eval_span_recall": 2 / 3,
                                                          "eval_span_f1": 2 / 3, "eval_span_number": 3}
    assert span_metrics([Example(("a",), ("O",))], [["O"]]) == {}
    lines = list(span_prediction_lines(examples, predicted))
    assert json.loads(lines[1]) == {"id": "b", "text": "the NewYork office", "spans": [{"start": 7, "end": 11, "label": "LOC"}]}
    back = write(tmp_path, "pred.jsonl", "".join(lines))
    assert [e.tags for e in read(back)] == [tuple(t) for t in predicted]


# ---------------------------------------------------------------- tagtune inspect on span data


def test_inspect_counts_span_problems_without_stopping(tmp_path: Path) -> None:
    from tagtune.doctor import diagnose

    path = write(tmp_path, "train.jsonl", jsonl(
        {"text": MERKEL, "spans": [{"start": 0, "end": 13, "label": "ORG"}, {"start": 7, "end": 13, "label": "PER"},
                                   {"start": 22, "end": 27, "label": "LOC", "text": "Pariss"}]},
        {"text": "EU rejects GermanCall", "label": [[0, 2, "ORG"], [11, 17, "MISC"], [3, 3, "X"], [2, 3, "Y"], [0, 40, "Z"]]},
    ))
    diagnosis = diagnose({"train": path}, DataConfig(), keep=3)
    stats = diagnosis.splits["train"]
    assert (stats.format, stats.spans, stats.split_words) == ("spans", {"MISC": 1, "ORG": 2}, 1)
    found = {p.kind: (p.severity, p.count, p.where) for p in diagnosis.problems}
    assert found["overlap"] == ("error", 1, [(f"{path}:1: span #0 [0, 13) ORG 'Angela Merkel' overlaps span #1 [7, 13) "
                                             "PER 'Merkel'; fix one of them, or pass --overlapping_spans longest to keep "
                                             "the longest")])
    assert found["text_mismatch"][:2] == ("error", 1)
    assert found["offset_out_of_range"][2] == [(f"{path}:2: span #4 [0, 40) Z lies outside the text (0..21 characters); "
                                               "offsets are characters of the text, end exclusive: fix the offsets")]
    assert found["empty_span"] == ("warning", 1, [f"{path}:2: span #2 [3, 3) X"])
    assert found["blank_span"] == ("warning", 1, [f"{path}:2: span #3 [2, 3) Y ' '"])
    assert found["split_word"] == ("warning", 1, [f"{path}:2: span #1 [11, 17) MISC 'German' cuts the word 'GermanCall'"])


def test_inspect_cli_on_brat_folders_and_label_studio(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tagtune.cli import app

    brat(tmp_path / "train", "news", MERKEL, "T1\tPER 0 13\tAngela Merkel\nT2\tLOC 22 27\tParis\n")
    write(tmp_path, "test.json", json.dumps([task(MERKEL, [(0, 6, "PER")], [(0, 13, "PER")])]))
    result = CliRunner().invoke(app, ["inspect", str(tmp_path), "--words_only", "--json", "--annotator", "first"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {s: (v["format"], v["spans"]) for s, v in report["splits"].items()} == {
        "train": ("brat", {"LOC": 1, "PER": 1}), "test": ("labelstudio", {"PER": 1})}
    assert {p["kind"] for p in report["problems"]} == {"several_annotations", "leakage_test", "tag_in_some_splits"}
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "train"), "--words_only"])
    assert result.exit_code == 0, result.output
    assert "Spans per label" in result.stdout and "words split at span boundaries: train 0" in result.stdout


def test_brat_split_folders_are_splits(tmp_path: Path) -> None:
    from tagtune.doctor import resolve_inputs

    for split in ("train", "dev", "test"):
        brat(tmp_path / "corpus" / split, "news", MERKEL, "T1\tPER 0 13\tAngela Merkel\n")
    assert resolve_inputs([tmp_path / "corpus"]) == {"train": tmp_path / "corpus" / "train",
                                                     "validation": tmp_path / "corpus" / "dev",
                                                     "test": tmp_path / "corpus" / "test"}
    assert resolve_inputs([tmp_path / "corpus" / "dev"]) == {"validation": tmp_path / "corpus" / "dev"}
