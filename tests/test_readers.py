"""Tests for tagtune.readers: every format, label naming, column choice, hub data sets and exact errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagtune import readers
from tagtune.config import DataConfig
from tagtune.corpus import Example
from tagtune.errors import ConfigError, DataFormatError, LabelSchemeError, TagtuneError
from tagtune.readers import detect_format, read_corpus, read_file, read_hf_dataset

DATA = Path(__file__).resolve().parent / "data" / "readers"
CONLL2003 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003"
NER_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CFG = DataConfig()


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def raises(error: type[Exception], path: Path, cfg: DataConfig = CFG, **kwargs) -> str:
    """Read ``path``, expect ``error``, and return its message (always one line)."""
    with pytest.raises(error) as info:
        read_file(path, cfg, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- format detection


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.txt", "EU B-ORG\n", "conll"),
        ("a.conll", "EU B-ORG\n", "conll"),
        ("a.iob", "EU B-ORG\n", "conll"),
        ("a.tsv", "EU\tB-ORG\n", "conll"),
        ("a.bio", "EU B-ORG\n", "conll"),
        ("a.conllu", "1\tEU\n", "conllu"),
        ("a.jsonl", '{"tokens": ["EU"]}\n', "jsonl"),
        ("a.csv", "tokens\nEU\n", "csv"),
        ("a.json", '[{"tokens": ["EU"]}]', "json"),
        ("a.json", '{\n  "data": [{"tokens": ["EU"]}]\n}', "json"),
        ("a.json", '{"data": [{"tokens": ["EU"]}]}', "json"),
        ("a.json", '{"tokens": ["EU"]}\n{"tokens": ["x"]}\n', "jsonl"),
        ("a.JSON", '\ufeff{"tokens": ["EU"]}\n', "jsonl"),
        ("noext", "EU NNP B-NP B-ORG\n\nx y z O\n", "conll"),
        ("noext", "# sent_id = 1\n1\tEU\t_\tPROPN\tNNP\t_\t0\troot\t_\t_\n", "conllu"),
        ("noext", '[\n {"tokens": ["EU"]}\n]\n', "json"),
        ("noext", '{"tokens": ["EU"]}\n', "jsonl"),
        ("data.dat", "id,tokens,ner_tags\n0,EU,B-ORG\n", "csv"),
        ("data.dat", ", , O O\n", "conll"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    assert detect_format(write(tmp_path, name, content)) == expected


def test_detect_format_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(DataFormatError, match=f"^{missing}: no such file; check the path"):
        detect_format(missing)
    with pytest.raises(DataFormatError, match=f"^{tmp_path}: is a directory, expected a data file"):
        detect_format(tmp_path)
    empty = write(tmp_path, "empty.txt", b"")
    with pytest.raises(DataFormatError, match=f"^{empty}: the file is empty"):
        detect_format(empty)
    binary = write(tmp_path, "blob", b"\x00\x01\x02 data")
    with pytest.raises(DataFormatError, match="looks like a binary file"):
        detect_format(binary)
    latin = write(tmp_path, "latin", b"EU O\ncaf\xe9 O\n")
    with pytest.raises(DataFormatError, match=f"^{latin}:2: invalid UTF-8 byte 0xe9"):
        detect_format(latin)


def test_import_is_light() -> None:
    code = ("import sys, tagtune.readers; "
            "print(sorted({'torch', 'transformers', 'datasets'} & sys.modules.keys()))")
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- CoNLL column files


def test_conll_docstart_and_tasks() -> None:
    path = DATA / "conll2003_sample.txt"
    examples, names = read_file(path, CFG)
    assert names is None
    assert [e.tokens for e in examples] == [("EU", "rejects", "German"), ("Peter", "Blackburn"),
                                            ("BRUSSELS", "1996-08-22")]
    assert [e.tags for e in examples] == [("B-ORG", "O", "B-MISC"), ("B-PER", "I-PER"), ("B-LOC", "O")]
    assert [e.doc for e in examples] == ["0", "0", "1"]
    assert [e.origin for e in examples] == [f"{path}:3", f"{path}:8", f"{path}:13"]
    assert [e.id for e in examples] == ["0", "1", "2"]
    pos = read_file(path, DataConfig(task_name="pos"))[0]
    assert pos[0].tags == ("NNP", "VBZ", "JJ")
    chunk = read_file(path, DataConfig(task_name="chunk"))[0]
    assert chunk[1].tags == ("B-NP", "I-NP")
    assert read_file(path, DataConfig(label_column=2))[0][0].tags == ("B-NP", "B-VP", "B-NP")
    assert read_file(path, DataConfig(label_column=-3))[0][0].tags == ("NNP", "VBZ", "JJ")


def test_conll_two_columns_any_task_and_no_docstart() -> None:
    for task in ("ner", "pos", "chunk"):
        examples, _ = read_file(DATA / "two_columns.conll", DataConfig(task_name=task))
        assert [e.tags for e in examples] == [("B-ORG", "O"), ("B-PER",)]  # last line has no final newline
        assert {e.doc for e in examples} == {None}


def test_conll_words_only_is_unlabelled(tmp_path: Path) -> None:
    path = write(tmp_path, "words.txt", "EU\nrejects\n\n\n\nPeter\n")
    examples, _ = read_file(path, CFG)
    assert [(e.tokens, e.tags) for e in examples] == [(("EU", "rejects"), None), (("Peter",), None)]


def test_conll_tabs_keep_spaces_inside_words(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", "New York\tB-LOC \t\nis\tO\n")
    assert read_file(path, CFG)[0][0].tokens == ("New York", "is")


def test_conll_crlf_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "crlf.txt", b"\xef\xbb\xbf-DOCSTART- O\r\n\r\nEU B-ORG \r\nrejects O\r\n\r\nx O")
    examples, _ = read_file(path, CFG)
    assert [(e.tokens, e.tags, e.doc, e.origin) for e in examples] == [
        (("EU", "rejects"), ("B-ORG", "O"), "0", f"{path}:3"), (("x",), ("O",), "0", f"{path}:6")]
    old_mac = write(tmp_path, "cr.txt", b"EU B-ORG\rrejects O\r\rx O\r")
    assert [e.tokens for e in read_file(old_mac, CFG)[0]] == [("EU", "rejects"), ("x",)]


def test_conll_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", "EU NNP B-ORG\nrejects O\n")
    assert raises(DataFormatError, path).startswith(f"{path}:2: expected 3 columns as on line 1, found 2")
    path = write(tmp_path, "latin.txt", b"EU B-ORG\n\ncaf\xe9 O\n")
    message = raises(DataFormatError, path)
    assert message.startswith(
        f"{path}:3: invalid UTF-8 byte 0xe9 at byte 4 of the line (byte 13 of the file)")
    assert "re-save the file as UTF-8" in message
    path = write(tmp_path, "blank.txt", "\n \n-DOCSTART- -X- O\n\n")
    assert raises(DataFormatError, path).startswith(f"{path}: no sentences in the train file (read as conll")
    message = raises(ConfigError, DATA / "conll2003_sample.txt", DataConfig(label_column=4))
    assert message.startswith("--label_column 4 is not a tag column of")
    assert "line 3 has 4 columns" in message
    with pytest.raises(ConfigError, match="not one of auto, conll"):
        read_file(path, CFG, format="xml")


# ---------------------------------------------------------------- CoNLL-U


def test_conllu_multiword_empty_nodes_docs() -> None:
    path = DATA / "sample.conllu"
    examples, names = read_file(path, CFG)
    assert names is None
    assert [e.tokens for e in examples] == [("Do", "n't", "stop", "."), ("Sue", "left", "."), ("Yes",)]
    assert [e.tags for e in examples] == [
        ("AUX", "PART", "VERB", "PUNCT"), ("PROPN", "VERB", "PUNCT"), ("INTJ",)]
    assert [e.id for e in examples] == ["s1", "s2", "s3"]
    assert [e.doc for e in examples] == ["doc-a", "doc-a", "1"]
    assert [e.origin for e in examples] == [f"{path}:5", f"{path}:11", f"{path}:18"]
    xpos = read_file(path, DataConfig(conllu_tag="xpos"))[0]
    assert [e.tags for e in xpos] == [("VBP", "RB", "VB", "."), ("NNP", "VBD", "."), ("UH",)]


def test_conllu_crlf_bom_and_errors(tmp_path: Path) -> None:
    row = "1\tEU\t_\tPROPN\tNNP\t_\t0\troot\t_\t_"
    path = write(tmp_path, "a.conllu", f"\ufeff# sent_id = x\r\n{row}\t\r\n\r\n\r\n{row}\r\n")
    assert [(e.tokens, e.tags, e.id) for e in read_file(path, CFG)[0]] == [
        (("EU",), ("PROPN",), "x"), (("EU",), ("PROPN",), "1")]
    path = write(tmp_path, "b.conllu", f"{row}\n2 x _ X X _ 1 dep _ _\n")
    message = raises(DataFormatError, path)
    assert message.startswith(f"{path}:2: expected 10 tab-separated CoNLL-U columns")
    assert "found 1" in message
    path = write(tmp_path, "c.conllu", row.replace("1", "one", 1) + "\n")
    assert raises(DataFormatError, path).startswith(f"{path}:1: CoNLL-U ID 'one' is not a word index")
    path = write(tmp_path, "d.conllu", "# only comments\n\n")
    assert raises(DataFormatError, path).startswith(f"{path}: no sentences")


# ---------------------------------------------------------------- JSON, JSON lines, CSV


def test_json_int_ids_with_labels_json_beside() -> None:
    path = DATA / "ids" / "train.json"
    examples, names = read_file(path, CFG)
    assert names == NER_NAMES
    assert examples[0] == Example(("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), "0",
                                  f"{path} record #0", "0")
    assert examples[1].tags == ("B-PER", "I-PER")
    examples, names = read_file(path, DataConfig(task_name="pos"))
    assert examples[0].tags == ("NNP", "VBZ", "JJ") and names is not None and len(names) == 47


def test_json_int_ids_with_label_names_file(tmp_path: Path) -> None:
    records = [{"tokens": ["a", "b"], "labels": [1, 0]}]
    path = write(tmp_path, "d.json", json.dumps({"data": records}))
    names_list = write(tmp_path, "names.json", '["O", "B-X"]')
    examples, names = read_file(path, DataConfig(label_names_file=names_list))
    assert (examples[0].tags, names) == (("B-X", "O"), ["O", "B-X"])
    names_dict = write(tmp_path, "names2.json", '{"labels": ["X", "Y"]}')
    assert read_file(path, DataConfig(label_names_file=names_dict))[0][0].tags == ("Y", "X")
    # --label_names_file wins over a labels.json beside the file
    write(tmp_path, "labels.json", '{"labels": ["P", "Q"]}')
    assert read_file(path, DataConfig(label_names_file=names_list))[0][0].tags == ("B-X", "O")
    assert read_file(path, CFG)[0][0].tags == ("Q", "P")


def test_jsonl_string_tags_and_doc_field() -> None:
    path = DATA / "strings" / "train.jsonl"
    examples, names = read_file(path, CFG)
    assert names is None
    assert examples[1] == Example(("Peter", "Blackburn"), ("B-PER", "I-PER"), "d1", f"{path}:3", "b")


def test_jsonl_crlf_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl",
                 '\ufeff{"tokens": ["a"], "tags": ["O"]}\r\n\r\n{"tokens": ["b"], "tags": ["O"]}')
    assert [e.origin for e in read_file(path, CFG)[0]] == [f"{path}:1", f"{path}:3"]
    path = write(tmp_path, "b.json", '\ufeff[{"tokens": ["a"],\r\n "tags": ["O"]}]\r\n')
    assert read_file(path, CFG)[0][0].tokens == ("a",)


def test_csv_json_lists_and_space_separated() -> None:
    path = DATA / "strings" / "train.csv"
    examples, names = read_file(path, CFG)
    assert names is None
    assert examples == [
        Example(("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), "d1", f"{path}:2", "0"),
        Example(("Peter", "Blackburn"), ("B-PER", "I-PER"), "d1", f"{path}:3", "1"),
    ]


def test_csv_upstream_to_csv_layout() -> None:
    """datasets' Dataset.to_csv writes numpy reprs: ['EU' 'rejects'] and [3 0 7]."""
    path = DATA / "ids" / "upstream.csv"
    examples, names = read_file(path, CFG)
    assert names == NER_NAMES
    assert examples[0].tokens[:3] == ("EU", "rejects", "German")
    assert examples[0].tags[:3] == ("B-ORG", "O", "B-MISC")
    assert examples[1].tokens == ("Don't", 'say "x"')
    assert read_file(path, DataConfig(task_name="pos"))[0][1].tags == ("VB", "VB")


def test_csv_crlf_bom_multiline_cell(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", '\ufefftokens,tags\r\n"[""a"",\r\n ""b""]",O O\r\nc,O\r\n')
    examples, _ = read_file(path, CFG)
    assert [(e.tokens, e.origin) for e in examples] == [(("a", "b"), f"{path}:2"), (("c",), f"{path}:4")]


def test_csv_unlabelled_with_free_text_column(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", 'tokens,note\nEU rejects it,"checked by two people"\n')
    assert read_file(path, CFG)[0][0].tags is None
    path = write(tmp_path, "l.csv", "tokens,entity\nEU rejects,B-ORG O\n")  # one item per word: tags
    assert "pass --label_column_name (e.g. 'entity')" in raises(DataFormatError, path)
    assert read_file(path, DataConfig(label_column_name="entity"))[0][0].tags == ("B-ORG", "O")


def test_column_choice(tmp_path: Path) -> None:
    record = {"id": 7, "sentence": ["a", "b"], "pos_tags": ["DT", "NN"], "ner_tags": ["O", "O"],
              "ner": ["X", "Y"]}
    path = write(tmp_path, "c.jsonl", json.dumps(record))
    example = read_file(path, CFG)[0][0]
    assert (example.tokens, example.tags, example.id, example.doc) == (("a", "b"), ("O", "O"), "7", None)
    assert read_file(path, DataConfig(task_name="pos"))[0][0].tags == ("DT", "NN")
    assert read_file(path, DataConfig(label_column_name="ner"))[0][0].tags == ("X", "Y")
    assert read_file(path, DataConfig(text_column_name="pos_tags"))[0][0].tokens == ("DT", "NN")
    path = write(tmp_path, "u.jsonl", '{"id": "1", "words": ["a"], "doc_id": 3}')
    assert read_file(path, CFG)[0][0] == Example(("a",), None, "3", f"{path}:1", "1")  # unlabelled
    path = write(tmp_path, "t.jsonl", '{"tokens": ["a"], "labels": ["O"]}')
    assert read_file(path, CFG)[0][0].tags == ("O",)


# ---------------------------------------------------------------- record errors


@pytest.mark.parametrize(
    ("lines", "error", "expected"),
    [
        (['{"tokens": ["a", "b"], "ner_tags": ["O"]}'], DataFormatError,
         ":1: 2 words in 'tokens' but 1 tags in 'ner_tags'; every word needs exactly one tag"),
        (['{"text": "a b", "ner_tags": ["O"]}'], DataFormatError,
         ":1: no column holds the words (expected 'tokens' or a list of strings); available columns: "
         "'text', 'ner_tags'; pass --text_column_name"),
        (['{"words": "a b", "ner_tags": ["O"]}'], DataFormatError,
         ":1: column 'words' should hold a list of words, found a string 'a b'"),
        (['{"tokens": ["a"], "pos_tags": ["DT"], "chunk_tags": ["B-NP"]}'], DataFormatError,
         ":1: no 'ner_tags' column for --task_name ner; available columns: 'tokens', 'pos_tags', "
         "'chunk_tags'; pass --label_column_name (e.g. 'pos_tags') or --task_name"),
        (['{"tokens": ["a"], "ner_tags": ["O"]}', '{"ner_tags": ["O"]}'], DataFormatError,
         ":2: missing column 'tokens' (the first record has it); available columns: 'ner_tags'"),
        (['{"tokens": "a", "ner_tags": ["O"]}'], DataFormatError,
         ":1: column 'tokens' should hold a list of words, found a string 'a'"),
        (['{"tokens": [], "ner_tags": []}'], DataFormatError,
         ":1: column 'tokens' is an empty list; every example needs at least one word"),
        (['{"tokens": ["a", 3], "ner_tags": ["O", "O"]}'], DataFormatError,
         ":1: word 1 in 'tokens' is an integer 3, expected a string"),
        (['{"tokens": ["a"], "ner_tags": [1.5]}'], LabelSchemeError,
         ":1: tag 0 in 'ner_tags' is a number 1.5; expected a tag name (string) or an integer id"),
        (['{"tokens": ["a"], "ner_tags": [null]}'], LabelSchemeError, ":1: tag 0 in 'ner_tags' is null None"),
        (['{"tokens": ["a"], "ner_tags": [true]}'], LabelSchemeError,
         ":1: tag 0 in 'ner_tags' is a boolean True"),
        (['{"tokens": ["a"], "ner_tags": "O"}'], DataFormatError,
         ":1: column 'ner_tags' should hold a list of tags, found a string 'O'"),
        (['{"tokens": ["a"], "ner_tags": [0]}'], LabelSchemeError,
         ": the tags in 'ner_tags' are integer ids and nothing names them; pass --label_names_file "
         "names.json"),
        (['{"tokens": ["a"], "ner_tags": ["O"]}', "", '{"tokens": ["a"], "ner_tags": [0]}'], LabelSchemeError,
         ":3: tag 0 in 'ner_tags' is an integer 0 but "),
        (['{"tokens": ["a"], "ner_tags": ["O"]}', '{"tokens": ["a"], "ner_tags": ["O"],}'], DataFormatError,
         ":2: invalid JSON (Expecting property name enclosed in double quotes at column 37); expected one "
         "JSON object per line"),
        (['["a", "b"]'], DataFormatError, ":1: expected an object with a 'tokens' list, found a list"),
        (['{"tokens": ["a"], "ner_tags": ["O"]}', '{"tokens": ["a"], "ner_tags": [4]}'], LabelSchemeError,
         ":2: tag 0 in 'ner_tags' is an integer 4 but"),
    ],
)
def test_jsonl_errors(tmp_path: Path, lines: list[str], error: type[Exception], expected: str) -> None:
    path = write(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    message = raises(error, path)
    assert message.startswith(f"{path}{expected}"), message
    if "nothing names them" in message:
        assert message.endswith("or put a labels.json beside the file")
    if " but " in expected and "tag 0" in expected:
        assert message.endswith("use either names or integer ids in the whole file")


def test_label_names_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "d.json",
                 '[{"tokens": ["a"], "ner_tags": [0]}, {"tokens": ["a", "b"], "ner_tags": [1, 9]}]')
    names = write(tmp_path, "names.json", '["O", "B-X"]')
    message = raises(LabelSchemeError, path, DataConfig(label_names_file=names))
    assert message == (f"{path} record #1: tag id 9 in 'ner_tags' is out of range: --label_names_file "
                       f"{names} names 2 labels (ids 0..1); fix the id or the names")
    other = write(tmp_path, "other.json", '{"pos_tags": ["X"]}')
    assert raises(LabelSchemeError, path, DataConfig(label_names_file=other)).startswith(
        f"{other}: no label names for column 'ner_tags' (keys: 'pos_tags')")
    dup = write(tmp_path, "dup.json", '["O", "O"]')
    message = raises(LabelSchemeError, path, DataConfig(label_names_file=dup))
    assert message == f"{dup} (ner_tags): label name 'O' is listed twice; each id needs its own name"
    bad = write(tmp_path, "bad.json", '["O",\n "B-X"')
    message = raises(DataFormatError, path, DataConfig(label_names_file=bad))
    assert message.startswith(f"{bad}:2: invalid JSON")
    missing = tmp_path / "nope.json"
    assert raises(ConfigError, path, DataConfig(label_names_file=missing)) == (
        f"--label_names_file {missing}: no such file")


def test_json_file_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n  {"tokens": ["a"]},\n  {"tokens": ["b"]\n]')
    assert raises(DataFormatError, path).startswith(
        f"{path}:4: invalid JSON (Expecting ',' delimiter at column 1)")
    path = write(tmp_path, "b.json", '{"rows": []}')
    assert raises(DataFormatError, path, format="json").startswith(
        f'{path}: expected a JSON list of objects or {{"data": [...]}}, found an object')
    path = write(tmp_path, "c.json",
                 '[{"tokens": ["a"], "ner_tags": ["O"]}, {"tokens": ["a"], "ner_tags": [0]}]')
    assert raises(LabelSchemeError, path) == (
        f"{path} record #1: tag 0 in 'ner_tags' is an integer 0 but {path} record #0 has tag names "
        "(strings); use either names or integer ids in the whole file")
    path = write(tmp_path, "d.json", "[]")
    assert raises(DataFormatError, path).startswith(f"{path}: no sentences in the train file (read as json")
    path = write(tmp_path, "e.json", b'[{"tokens": ["a"]},\n{"tokens": ["caf\xe9"]}]')
    assert raises(DataFormatError, path).startswith(
        f"{path}:2: invalid UTF-8 byte 0xe9 at byte 36 of the file")


def test_csv_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "tokens,ner_tags\na b,O O\na,b,O\n")
    assert raises(DataFormatError, path).startswith(
        f"{path}:3: expected 2 comma-separated fields as in the header (line 1), found 3")
    path = write(tmp_path, "b.csv", "tokens,ner_tags\na b,O\n")
    assert raises(DataFormatError, path).startswith(f"{path}:2: 2 words in 'tokens' but 1 tags in 'ner_tags'")
    path = write(tmp_path, "c.csv", "tokens,ner_tags\n\"['a' 'b' ... 'z']\",O\n")
    assert raises(DataFormatError, path).startswith(f"{path}:2: cannot parse the list in column 'tokens'")
    path = write(tmp_path, "d.csv", "id,tokens,ner_tags\n")
    assert raises(DataFormatError, path).startswith(f"{path}: no sentences in the train file (read as csv")
    path = write(tmp_path, "e.csv", "tokens,ner_tags\na,3\n")
    assert "integer ids and nothing names them" in raises(LabelSchemeError, path)
    path = write(tmp_path, "f.csv", 'tokens,tokens\na,b\n')
    assert raises(DataFormatError, path).startswith(f"{path}:1: column 'tokens' appears twice in the header")


def test_path_errors(tmp_path: Path) -> None:
    for fmt in (None, "conll", "json", "jsonl", "csv", "conllu"):
        missing = tmp_path / "nope.txt"
        assert raises(DataFormatError, missing, format=fmt).startswith(f"{missing}: no such file")
        assert raises(DataFormatError, tmp_path, format=fmt).startswith(f"{tmp_path}: is a directory")
        empty = write(tmp_path, "empty.jsonl", b"")
        assert raises(DataFormatError, empty, format=fmt) == (
            f"{empty}: the file is empty; expected sentences (CoNLL, CoNLL-U, JSON or CSV)")


# ---------------------------------------------------------------- read_corpus


def test_read_corpus_files_limits_and_names(tmp_path: Path) -> None:
    cfg = DataConfig(train_file=DATA / "ids" / "train.json", validation_file=DATA / "conll2003_sample.txt",
                     test_file=DATA / "ids" / "upstream.csv", max_train_samples=1, max_eval_samples=2)
    corpus = read_corpus(cfg)
    assert {split: len(ex) for split, ex in corpus.splits.items()} == {"train": 1, "validation": 2, "test": 2}
    assert corpus.label_names == NER_NAMES
    assert corpus.format == "json+conll+csv"
    other = write(tmp_path, "labels.json", '{"ner_tags": ["O", "B-X", "I-X", "B-Y"]}')
    test = write(other.parent, "test.jsonl", '{"tokens": ["a"], "ner_tags": [3]}')
    with pytest.raises(LabelSchemeError, match="the label names of the test split .* differ from those of"):
        read_corpus(DataConfig(train_file=DATA / "ids" / "train.json", test_file=test))
    corpus = read_corpus(DataConfig(test_file=DATA / "strings" / "train.jsonl", max_predict_samples=0))
    assert corpus.splits == {"test": []}


def test_read_corpus_config_errors() -> None:
    with pytest.raises(ConfigError, match="^no data: pass --dataset_name or --train_file"):
        read_corpus(DataConfig())
    with pytest.raises(ConfigError, match="^both --dataset_name conll2003 and --train_file were given"):
        read_corpus(DataConfig(dataset_name="conll2003", train_file=DATA / "ids" / "train.json"))
    with pytest.raises(ConfigError, match=r"^--max_eval_samples must be a whole number >= 0, got -1"):
        read_corpus(DataConfig(validation_file=DATA / "ids" / "train.json", max_eval_samples=-1))


# ---------------------------------------------------------------- datasets


def test_read_hf_dataset_classlabel() -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NER_NAMES)),
        "pos_tags": datasets.Sequence(datasets.Value("string")),
        "chunk_tags": datasets.Sequence(datasets.Value("int32")),
    })
    data = datasets.Dataset.from_dict({
        "id": ["a", "b"], "tokens": [["EU", "rejects"], ["Peter"]], "ner_tags": [[3, 0], [1]],
        "pos_tags": [["NNP", "VBZ"], ["NNP"]], "chunk_tags": [[1, 2], [1]],
    }, features=features).with_format("numpy")
    cfg = DataConfig(dataset_name="conll2003")
    examples, names = read_hf_dataset(data, cfg, "train")
    assert names == NER_NAMES
    assert examples == [Example(("EU", "rejects"), ("B-ORG", "O"), None, "conll2003 train record #0", "a"),
                        Example(("Peter",), ("B-PER",), None, "conll2003 train record #1", "b")]
    examples, names = read_hf_dataset(data, DataConfig(task_name="pos"), "test")
    assert (examples[0].tags, names) == (("NNP", "VBZ"), None)
    with pytest.raises(LabelSchemeError, match="^dataset validation: the tags in 'chunk_tags' are integer "
                                               "ids and the data set does not name them"):
        read_hf_dataset(data, DataConfig(task_name="chunk"), "validation")
    with pytest.raises(ConfigError, match="expected one split"):
        read_hf_dataset(datasets.DatasetDict({"train": data}), cfg, "train")
    assert read_hf_dataset([{"tokens": ["a"]}], cfg, "test")[0][0].tags is None  # any iterable of records


def test_read_corpus_local_dataset_dir(tmp_path: Path) -> None:
    """A dataset_name that is a local directory goes through datasets.load_dataset (no hub)."""
    pytest.importorskip("datasets")
    data_dir = tmp_path / "my_data"
    data_dir.mkdir()
    row = '{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}\n'
    (data_dir / "train.jsonl").write_text(row * 3)
    (data_dir / "test.jsonl").write_text(row)
    cfg = DataConfig(dataset_name=str(data_dir), cache_dir=tmp_path / "cache", max_train_samples=2)
    corpus = read_corpus(cfg)
    assert (corpus.format, corpus.label_names) == ("hub", None)
    assert {split: len(examples) for split, examples in corpus.splits.items()} == {"train": 2, "test": 1}
    assert corpus.splits["test"][0] == Example(("EU", "rejects"), ("B-ORG", "O"), None,
                                               f"{data_dir} test record #0", "0")


def test_hub_unreachable_fails_fast(tmp_path: Path) -> None:
    """There is no internet here: loading must fail within seconds with one line, not retry for 25 s."""
    pytest.importorskip("datasets")
    start = time.monotonic()
    with pytest.raises(DataFormatError) as info:
        read_corpus(DataConfig(dataset_name="tagtune-tests/no-such-dataset", cache_dir=tmp_path))
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert message.startswith("data set 'tagtune-tests/no-such-dataset' could not be loaded from the hub (")
    assert message.endswith("); pass --train_file/--validation_file/--test_file instead")
    assert "\n" not in message


def test_hub_probe_switches_to_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # as if HF_HUB_OFFLINE were not set
    monkeypatch.setattr(readers, "_hub_reachable", lambda: False)
    start = time.monotonic()
    with pytest.raises(DataFormatError, match=r"^data set 'conll2003' could not be loaded from the hub \(the "
                       r"hub is unreachable and the data set is not cached\); pass --train_file"):
        read_corpus(DataConfig(dataset_name="conll2003", cache_dir=tmp_path))
    assert time.monotonic() - start < 15
    assert datasets.config.HF_HUB_OFFLINE is False  # restored


def test_hub_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in readers._PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    start = time.monotonic()
    assert readers._hub_reachable(timeout=1.0) is False
    assert time.monotonic() - start < 5
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # behind a proxy the probe proves nothing
    assert readers._hub_reachable(timeout=1.0) is True


# ---------------------------------------------------------------- the shared CoNLL-2003 copy


@pytest.mark.slow
@pytest.mark.skipif(not CONLL2003.is_dir(), reason="shared CoNLL-2003 data not present")
def test_conll2003_shared_data() -> None:
    train, names = read_file(CONLL2003 / "train.txt", CFG)
    assert names is None
    words, docs = sum(len(e.tokens) for e in train), len({e.doc for e in train})
    assert (len(train), words, docs) == (14041, 203621, 946)
    assert train[0].tokens[:2] == ("EU", "rejects") and train[0].doc == "0" and train[-1].doc == "945"
    train_json, json_names = read_file(CONLL2003 / "json" / "train.json", CFG)
    assert json_names == NER_NAMES
    assert [(e.tokens, e.tags, e.doc) for e in train_json] == [(e.tokens, e.tags, e.doc) for e in train]
    test, _ = read_file(CONLL2003 / "test.txt", CFG)
    assert (len(test), sum(len(e.tokens) for e in test)) == (3453, 46435)


# ---------------------------------------------------------------- fuzzing

FUZZ_NAMES = ("f.txt", "f.conllu", "f.json", "f.jsonl", "f.csv", "f")
FUZZ_CFGS = (CFG, DataConfig(task_name="pos", conllu_tag="xpos"), DataConfig(label_column=2),
             DataConfig(text_column_name="a", label_column_name="b"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tokens", "ner_tags", "tags", "id", "doc", "a", "b", "pos_tags"]), inner,
        max_size=5),
    max_leaves=12,
)
CONLL_PIECES = ["EU", "B-ORG", "O", " ", "\t", "\n", "\r\n", "\n\n", "-DOCSTART-", "#", "1", "1-2", "2.1",
                "_", ",", '"', "[", "]", "{", "}", "\ufeff", "\xe9", "\x00"]
conllish = st.lists(st.sampled_from(CONLL_PIECES), max_size=40).map("".join)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "labels.json").write_text(json.dumps({"ner_tags": NER_NAMES, "tags": ["O", "B-X"]}))
    return directory


def _read_or_tagtune_error(path: Path, cfg: DataConfig) -> None:
    try:
        examples, _ = read_file(path, cfg)
    except TagtuneError as err:
        assert "\n" not in str(err)
        return
    assert examples and all(isinstance(tag, str) for e in examples for tag in e.tags or ())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | conllish.map(str.encode)
       | json_values.map(lambda value: json.dumps(value).encode())
       | st.lists(json_values, max_size=4).map(lambda rows: "\n".join(map(json.dumps, rows)).encode()),
       name=st.sampled_from(FUZZ_NAMES), cfg=st.sampled_from(FUZZ_CFGS))
def test_fuzz_reads_or_raises_tagtune_error(fuzz_dir: Path, content: bytes, name: str,
                                            cfg: DataConfig) -> None:
    path = fuzz_dir / name
    path.write_bytes(content)
    _read_or_tagtune_error(path, cfg)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(st.sampled_from('ab ,"[]\'01\n'), max_size=8), min_size=1, max_size=3),
                     max_size=4))
def test_fuzz_csv_cells(fuzz_dir: Path, rows: list[list[str]]) -> None:
    lines = ["tokens,ner_tags,id"] + [",".join('"' + c.replace('"', '""') + '"' for c in row) for row in rows]
    path = fuzz_dir / "cells.csv"
    path.write_text("\n".join(lines) + "\n")
    _read_or_tagtune_error(path, CFG)
