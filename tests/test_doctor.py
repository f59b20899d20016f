"""The data doctor: each problem planted in a small file is found, counted and placed (file:line)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tagtune.doctor
from tagtune.cli import app
from tagtune.config import DataConfig
from tagtune.doctor import diagnose, normalise, resolve_inputs
from tagtune.errors import ConfigError, DataFormatError

TRAIN = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

Angela NNP B-NP B-PER
Merkel NNP I-NP I-PER
visited VBD B-VP O
Paris NNP B-NP B-LOC
on IN B-PP O
Monday NNP B-NP O
. . O O
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def conll(words_tags: list[list[tuple[str, str]]]) -> str:
    return "\n\n".join("\n".join(f"{w} X X {t}" for w, t in sentence) for sentence in words_tags) + "\n"


def problem(diagnosis, kind: str):
    found = {p.kind: p for p in diagnosis.problems}
    assert kind in found, f"{kind} not among {sorted(found)}"
    return found[kind]


def test_doctests():
    assert doctest.testmod(tagtune.doctor).failed == 0


def test_clean_data_has_no_problems_and_right_statistics(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    test = write(tmp_path / "test.txt", conll([[("Tokyo", "B-LOC"), ("won", "O")],
                                               [("Acme", "B-ORG"), ("hired", "O"), ("Lee", "B-PER"), ("Wu", "B-MISC")]]))
    extra = write(tmp_path / "more.txt", conll([[("EU", "B-ORG"), ("Paris", "B-LOC")]]))
    diagnosis = diagnose({"train": train, "test": test, "extra": extra})
    assert not diagnosis.has_problems(), diagnosis.problems
    stats = diagnosis.splits["train"]
    assert (stats.format, stats.sentences, stats.words, stats.documents, stats.longest) == ("conll", 3, 13, 1, 7)
    assert stats.tags == {"O": 6, "B-PER": 2, "I-PER": 2, "B-ORG": 1, "B-MISC": 1, "B-LOC": 1}
    assert stats.entities == {"LOC": 1, "MISC": 1, "ORG": 1, "PER": 2}
    assert diagnosis.scheme == stats.scheme == "IOB2"
    assert diagnosis.labels == ["O", "B-ORG", "B-MISC", "B-PER", "I-PER", "B-LOC"]
    assert list(diagnosis.splits) == ["train", "test", "extra"]
    assert diagnosis.splits["test"].entities == {"LOC": 1, "MISC": 1, "ORG": 1, "PER": 1}
    lengths = diagnosis.lengths
    assert lengths["unit"] == "words" and lengths["max_length"] is None
    assert sum(lengths["splits"]["train"]["histogram"]) == 3 and lengths["splits"]["train"]["longest"] == 7


def test_invalid_iob_tags_are_placed_by_file_and_line(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN + "\nthe X X O\nLondon X X I-LOC\nmarket X X B-ORG\nboss X X I-PER\n")
    diagnosis = diagnose({"train": train})
    bad = problem(diagnosis, "invalid_tags")
    assert (bad.severity, bad.count) == ("error", 2)
    assert bad.where == [f"{train}:20: 'I-LOC' after 'O'", f"{train}:22: 'I-PER' after 'B-ORG'"]
    assert diagnosis.has_problems()


def test_invalid_bioes_in_json_lines_names_record_line_and_word(tmp_path):
    lines = [{"tokens": ["Ann", "Lee", "left"], "ner_tags": ["B-PER", "E-PER", "O"]},
             {"tokens": ["New", "York", "fell"], "ner_tags": ["B-LOC", "O", "S-ORG"]}]
    path = write(tmp_path / "train.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    diagnosis = diagnose({"train": path})
    assert diagnosis.scheme == "BIOES"
    assert problem(diagnosis, "invalid_tags").where == [f"{path}:2 word 1: 'B-LOC' before 'O'"]


def test_tags_in_only_some_splits(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    dev = write(tmp_path / "valid.txt", conll([[("Paris", "B-LOC"), ("Expo", "B-EVENT")]]))
    test = write(tmp_path / "test.txt", conll([[("Paris", "B-LOC")]]))
    diagnosis = diagnose({"train": train, "validation": dev, "test": test})
    unseen = problem(diagnosis, "tag_not_in_train")
    assert (unseen.severity, unseen.count, unseen.where) == ("warning", 1, ["'B-EVENT': in validation; not in train, test"])
    partial = problem(diagnosis, "tag_in_some_splits")
    assert partial.severity == "info"
    assert "'B-PER': in train; not in validation, test" in partial.where


def test_unused_label_names(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"ner_tags": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]}))
    path = write(tmp_path / "train.jsonl", json.dumps({"tokens": ["Ann", "left"], "ner_tags": [1, 0]}) + "\n")
    diagnosis = diagnose({"train": path})
    assert diagnosis.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert problem(diagnosis, "unused_label_names").where == ["I-PER, B-LOC, I-LOC"]


def test_sentences_longer_than_max_length_in_subtokens(tmp_path, tiny_bert_dir):
    from tagtune.align import load_tokenizer

    long_sentence = [("the", "O")] * 20 + [("zzqx", "B-PER")]  # 21 words; 'zzqx' is 4 pieces
    train = write(tmp_path / "train.txt", conll([[("paris", "B-LOC")], long_sentence, [("the", "O")] * 10]))
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    diagnosis = diagnose({"train": train}, tokenizer=tokenizer, max_length=16)
    lengths = diagnosis.lengths
    n_long = len(tokenizer([w for w, _ in long_sentence], is_split_into_words=True)["input_ids"])
    assert n_long == 26  # CLS + 20 + 4 + SEP
    assert lengths["unit"] == "sub-tokens" and lengths["max_length"] == 16 and lengths["model_limit"] == 512
    train_lengths = lengths["splits"]["train"]
    assert (train_lengths["over_max_length"], train_lengths["over_model_limit"], train_lengths["longest"]) == (1, 0, n_long)
    assert lengths["edges"] == [0, 8, 16, 32]
    assert train_lengths["histogram"] == [1, 1, 1]  # 3, 12 and 26 sub-tokens
    over = problem(diagnosis, "over_max_length")
    assert (over.count, over.where) == (1, [f"{train}:3: {n_long} sub-tokens"])


def test_near_duplicate_normalisation():
    assert normalise(["Bayern", "won", "3-1", "."]) == normalise(["BAYERN", "won", "2:0"]) == "bayern won 00"
    assert normalise([".", "--"]) == ""


def test_leakage_exact_and_near_duplicates_across_train_and_test(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    test = write(tmp_path / "test.txt", conll([
        [("Peter", "B-PER"), ("Blackburn", "I-PER")],                        # exact copy of train line 8
        [("angela", "B-PER"), ("merkel", "I-PER"), ("VISITED", "O"), ("Paris", "B-LOC"), ("on", "O"),
         ("Monday", "O")],                                                   # near copy of train line 11
        [("Brand", "O"), ("new", "O")],
        [("Brand", "O"), ("new", "O")],                                      # repeated within test
    ]))
    diagnosis = diagnose({"train": train, "test": test})
    shared = diagnosis.duplicates["shared_with_train"]["test"]
    assert (shared["exact"], shared["near"], shared["five_words_or_more"]) == (1, 1, 1)
    assert diagnosis.duplicates["within_split"] == {"train": 0, "test": 1}
    leak = problem(diagnosis, "leakage_test")
    assert (leak.severity, leak.count) == ("warning", 2)
    assert leak.where == [f"{test}:4 = {train}:11 (near): angela merkel VISITED Paris on Monday",
                          f"{test}:1 = {train}:8 (exact): Peter Blackburn"]


def test_suspicious_lines_and_words(tmp_path):
    text = TRAIN.replace("\nPeter", "\n \t\nPeter").replace("call NN", "cafÃ© NN") + "\n\n\nOslo X X B-LOC\n"
    train = write(tmp_path / "train.txt", text)
    diagnosis = diagnose({"train": train})
    assert problem(diagnosis, "whitespace_line").where == [f"{train}:8"]
    assert problem(diagnosis, "blank_lines").where == [f"{train}:19"]  # not line 7: line 8 is reported above
    assert problem(diagnosis, "mojibake").where == [f"{train}:6: 'cafÃ©'"]

    records = [{"tokens": ["-DOCSTART-"], "ner_tags": ["O"]},
               {"tokens": ["Ann", "", "zero\u200bwidth", "two words", "x" * 60], "ner_tags": ["B-PER", "O", "O", "O", "O"]}]
    path = write(tmp_path / "data.jsonl", json.dumps(records[0]) + "\n\n" + json.dumps(records[1]) + "\n")
    diagnosis = diagnose({"data": path})
    assert problem(diagnosis, "docstart_word").where == [f"{path}:1 word 1"]
    assert problem(diagnosis, "blank_lines").where == [f"{path}:2"]
    assert problem(diagnosis, "empty_word").where == [f"{path}:3 word 2"]
    assert problem(diagnosis, "invisible_characters").where == [f"{path}:3 word 3: 'zero\\u200bwidth'"]
    assert problem(diagnosis, "space_in_word").where == [f"{path}:3 word 4: 'two words'"]
    assert problem(diagnosis, "long_word").count == 1


def test_an_unreadable_file_is_a_problem_unless_it_is_the_only_one(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    broken = write(tmp_path / "test.txt", "EU B-ORG\nrejects X O\n")
    diagnosis = diagnose({"train": train, "test": broken})
    unreadable = problem(diagnosis, "unreadable")
    assert unreadable.severity == "error" and f"{broken}:2: expected 2 columns" in unreadable.where[0]
    assert list(diagnosis.splits) == ["train"]
    with pytest.raises(DataFormatError, match="expected 2 columns"):
        diagnose({"test": broken})


def test_resolve_inputs(tmp_path):
    for name in ("train.txt", "valid.txt", "test.txt", "labels.json", "notes.md"):
        write(tmp_path / name, "x\n")
    assert resolve_inputs([tmp_path]) == {s: tmp_path / f for s, f in
                                          (("train", "train.txt"), ("validation", "valid.txt"), ("test", "test.txt"))}
    assert resolve_inputs([tmp_path / "test.txt"], train=tmp_path / "valid.txt") == {
        "train": tmp_path / "valid.txt", "test": tmp_path / "test.txt"}
    assert list(resolve_inputs([tmp_path / "notes.md"])) == ["notes"]
    write(tmp_path / "train.json", "x\n")
    with pytest.raises(ConfigError, match="two files for the train split"):
        resolve_inputs([tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no train/valid"):
        resolve_inputs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no data"):
        resolve_inputs([])


def test_cli_text_json_and_strict(tmp_path, tiny_bert_dir):
    write(tmp_path / "train.txt", TRAIN)
    write(tmp_path / "test.txt", conll([[("Peter", "B-PER"), ("Blackburn", "I-PER")], [("O", "O"), ("Oslo", "I-LOC")]]))
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(tmp_path), "--model", str(tiny_bert_dir), "--quiet"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in ("labels: O B-ORG B-MISC B-PER I-PER B-LOC I-LOC", "Entities per type", "Sentence lengths in sub-tokens",
                 "Duplicate sentences", f"{tmp_path / 'test.txt'}:5: 'I-LOC' after 'O'", "1 error(s)"):
        assert text in result.output
    result = runner.invoke(app, ["inspect", str(tmp_path), "--words_only", "--json", "--strict"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert found["model"] is None and found["splits"]["test"]["sentences"] == 2
    assert {p["kind"] for p in found["problems"]} >= {"invalid_tags", "leakage_test", "tag_not_in_train"}
    clean = runner.invoke(app, ["inspect", "--train", str(tmp_path / "train.txt"), "--words_only", "--strict"])
    assert clean.exit_code == 0, clean.output
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nope.txt"), "--words_only"])
    assert isinstance(missing.exception, DataFormatError) and "no such file" in str(missing.exception)


@pytest.mark.slow
def test_conll2003_label_sets(conll2003_dir):
    if not (conll2003_dir / "json" / "train.json").is_file():
        pytest.skip(f"CoNLL-2003's integer-id JSON is not at {conll2003_dir / 'json'}")
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    json_diagnosis = diagnose({"train": conll2003_dir / "json" / "train.json"}, DataConfig())
    assert json_diagnosis.labels == names and json_diagnosis.splits["train"].sentences == 14041
    txt = diagnose(resolve_inputs([conll2003_dir]))
    assert sorted(txt.labels) == sorted(names) and not problem_kinds(txt) & {"invalid_tags", "unreadable"}
    assert [s.sentences for s in txt.splits.values()] == [14041, 3250, 3453]
    assert [s.documents for s in txt.splits.values()] == [946, 216, 231]


def problem_kinds(diagnosis) -> set[str]:
    return {p.kind for p in diagnosis.problems}


def test_mixed_schemes_across_splits(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    test = write(tmp_path / "test.txt", conll([[("Ann", "S-PER"), ("left", "O")]]))
    only_o = write(tmp_path / "valid.txt", conll([[("nothing", "O")]]))
    diagnosis = diagnose({"train": train, "validation": only_o, "test": test})
    mixed = problem(diagnosis, "mixed_schemes")
    assert mixed.severity == "warning" and "(train: IOB2, test: BIOES)" in mixed.message
