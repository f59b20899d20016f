"""Bad input at the command line: every kind is one line ``error: ...`` naming where, and exit status 2.

Each case feeds one kind of malformed input (data files, label files, flags, model directories,
output directories) to ``tagtune train``, ``tagtune evaluate``, ``tagtune predict``/``inspect``/
``serve``/``export`` or the example scripts (``run_ner.py``, ``run_ner_no_trainer.py``) through
``run_guarded``, as the console scripts run them, and asserts the exit status, a single ``error:``
line holding the expected place and problem, and no traceback. Reader-level errors and the
hypothesis fuzzing of the file readers are in ``test_readers.py``; a few cases run in real
subprocesses at the end.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "token-classification"
sys.path.insert(0, str(EXAMPLES))

NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
GOOD = "EU B-ORG\nrejects O\n\n"
OK = {"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}
SPANS_OK = {"text": "EU rejects", "spans": [{"start": 0, "end": 2, "label": "ORG"}]}
TAGGED_CONLLU = "1\tEU\teu\tB-ORG\t_\t_\t0\troot\t_\t_\n"  # UPOS only: no XPOS
UNTAGGED_CONLLU = "# sent_id = u1\n1\tEU\t_\t_\t_\t_\t0\troot\t_\t_\n2\trejects\t_\t_\t_\t_\t1\tdep\t_\t_\n"


def jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


@dataclass
class Env:
    """Builds files and command lines for one case inside its own directory."""

    root: Path
    tiny: Path  # a token classifier with unnamed labels (LABEL_0...): a base model to fine-tune
    named: Path  # a "fine-tuned" tagger with named labels
    pickled: Path  # the named tagger with only pytorch_model.bin

    def file(self, name: str, content: str | bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path)

    def train(self, data: str, *flags: str, model: Path | str | None = None) -> list[str]:
        return ["train", "--model", str(model or self.tiny), "--train", data,
                "--output", str(self.root / "out"), "--quiet", "--max_seq_length", "32", "--use_cpu", "true",
                *flags]

    def good(self) -> str:
        return self.file("good.txt", GOOD)

    def ner(self, *flags: str) -> list[str]:
        return ["--model_name_or_path", str(self.tiny), "--output_dir", str(self.root / "out"), "--do_train",
                "--report_to", "none", "--use_cpu", "true", *flags]

    def model_copy(self, name: str, source: Path | None = None) -> Path:
        target = self.root / name
        shutil.copytree(source or self.tiny, target)
        return target


def _corrupt_config(e: Env) -> list[str]:
    model = e.model_copy("badconfig")
    (model / "config.json").write_text("{not json")
    return e.train(e.good(), model=model)


def _no_weights(e: Env) -> list[str]:
    model = e.model_copy("noweights")
    (model / "model.safetensors").unlink()
    return e.train(e.good(), model=model)


def _truncated_weights(e: Env) -> list[str]:
    model = e.model_copy("truncated", e.named)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    return ["evaluate", str(model), e.good(), "--quiet"]


def _labels_beside(e: Env, labels: str, records: str, name: str = "ids.jsonl") -> list[str]:
    e.file("ids/labels.json", labels)
    return e.train(e.file(f"ids/{name}", records))


def _output_not_empty(e: Env) -> list[str]:
    e.file("out/keep.txt", "precious")
    return e.train(e.good())


def _earlier_results(e: Env) -> list[str]:
    e.file("results/eval_results.json", "{}")
    return ["evaluate", str(e.named), e.good(), "--quiet", "--output_dir", str(e.root / "results")]


# (id, command line builder, substrings of the one error line). Ids name the kind of bad input.
CASES: list[tuple[str, Callable[[Env], list[str]], list[str]]] = [
    # --- paths
    ("nonexistent data file", lambda e: e.train(str(e.root / "nope.txt")), ["nope.txt: no such file"]),
    ("nonexistent validation file",
     lambda e: e.train(e.good(), "--validation_file", str(e.root / "dev.txt")), ["dev.txt: no such file"]),
    ("directory as data file", lambda e: e.train(str(e.root)), ["is a directory, expected a data file"]),
    ("path through a file", lambda e: e.train(e.good() + "/train.txt"), ["good.txt/train.txt: no such file"]),
    # --- encodings and empty files
    ("empty file", lambda e: e.train(e.file("empty.txt", "")), ["empty.txt: the file is empty"]),
    ("only blank lines", lambda e: e.train(e.file("blank.txt", "\n \n\t\n")), ["blank.txt: no sentences"]),
    ("byte order mark only", lambda e: e.train(e.file("bom.txt", "\ufeff\r\n")), ["bom.txt: no sentences"]),
    ("only -DOCSTART-", lambda e: e.train(e.file("doc.txt", "-DOCSTART- -X- O\n\n")),
     ["doc.txt: no sentences"]),
    ("binary file", lambda e: e.train(e.file("bin.dat", b"\x00\x01\x02abc")),
     ["bin.dat: looks like a binary file"]),
    ("invalid UTF-8 (latin-1)",
     lambda e: e.train(e.file("latin.txt", b"EU B-ORG\ncaf\xe9 O\n")),
     ["latin.txt:2: invalid UTF-8 byte 0xe9"]),
    ("invalid UTF-8 in JSON lines",
     lambda e: e.train(e.file("latin.jsonl", jsonl(OK).encode() + b'{"tokens": ["\xff"]}\n')),
     ["latin.jsonl:2: invalid UTF-8 byte 0xff"]),
    # --- CoNLL columns
    ("missing column", lambda e: e.train(e.file("cols.txt", "EU NNP B-ORG\nrejects O\n")),
     ["cols.txt:2: expected 3 columns as on line 1, found 2"]),
    ("extra column", lambda e: e.train(e.file("extra.txt", "EU B-ORG\nrejects VBZ O\n")),
     ["extra.txt:2: expected 2 columns as on line 1, found 3"]),
    ("tabs versus spaces", lambda e: e.train(e.file("tabs.txt", "New York\tB-LOC\nrejects the O\n")),
     ["tabs.txt:2: expected 2 columns", "found 3"]),
    ("tag column out of range", lambda e: e.train(e.good(), "--label_column", "5"),
     ["--label_column 5 is not a tag column of", "good.txt"]),
    ("CoNLL-U line without 10 columns", lambda e: e.train(e.file("a.conllu", "1\tEU\teu\tPROPN\n")),
     ["a.conllu:1: expected 10 tab-separated CoNLL-U columns", "found 4"]),
    ("CoNLL-U bad word id",
     lambda e: e.train(e.file("b.conllu", "x\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\t_\n")),
     ["b.conllu:1: CoNLL-U ID 'x' is not a word index"]),
    # --- JSON / JSON lines records
    ("invalid JSON line", lambda e: e.train(e.file("a.jsonl", jsonl(OK, '{"tokens": ["x"], '))),
     ["a.jsonl:2: invalid JSON"]),
    ("tokens and tags of different lengths",
     lambda e: e.train(e.file("b.jsonl", jsonl(OK, {"tokens": ["a", "b"], "ner_tags": ["O"]}))),
     ["b.jsonl:2: 2 words in 'tokens' but 1 tags in 'ner_tags'"]),
    ("record missing the tag column", lambda e: e.train(e.file("c.jsonl", jsonl(OK, {"tokens": ["a"]}))),
     ["c.jsonl:2: missing column 'ner_tags'"]),
    ("tags only after an untagged first record",
     lambda e: e.train(e.file("late.jsonl", jsonl({"tokens": ["a"]}, OK))),
     ["late.jsonl:2: has tags in 'ner_tags' but the first record", "late.jsonl:1) has none"]),
    ("training data without tags", lambda e: e.train(e.file("words.jsonl", jsonl({"tokens": ["EU", "rejects"]}))),
     ["words.jsonl: the train data has words but no tags", "no 'ner_tags' column", "needs a tag for every word"]),
    ("tokens not a list",
     lambda e: e.train(e.file("d.jsonl", jsonl(OK, {"tokens": "a b", "ner_tags": ["O"]}))),
     ["d.jsonl:2: column 'tokens' should hold a list of words, found a string"]),
    ("empty tokens list", lambda e: e.train(e.file("e.jsonl", jsonl(OK, {"tokens": [], "ner_tags": []}))),
     ["e.jsonl:2: column 'tokens' is an empty list"]),
    ("word not a string",
     lambda e: e.train(e.file("f.jsonl", jsonl(OK, {"tokens": [1, "b"], "ner_tags": ["O", "O"]}))),
     ["f.jsonl:2: word 0 in 'tokens' is an integer 1, expected a string"]),
    ("null tag", lambda e: e.train(e.file("g.jsonl", jsonl(OK, {"tokens": ["a"], "ner_tags": [None]}))),
     ["g.jsonl:2: tag 0 in 'ner_tags' is null"]),
    ("float tag", lambda e: e.train(e.file("h.jsonl", jsonl({"tokens": ["a"], "ner_tags": [1.5]}))),
     ["h.jsonl:1: tag 0 in 'ner_tags' is a number 1.5"]),
    ("mixed integer and string tags",
     lambda e: e.train(e.file("i.jsonl", jsonl(OK, {"tokens": ["a"], "ner_tags": [0]}))),
     ["i.jsonl:2: tag 0 in 'ner_tags' is an integer 0 but", "i.jsonl:1 has tag names"]),
    ("integer ids nothing names",
     lambda e: e.train(e.file("j.jsonl", jsonl({"tokens": ["a"], "ner_tags": [0]}))),
     ["j.jsonl: the tags in 'ner_tags' are integer ids and nothing names them"]),
    ("id out of range",
     lambda e: _labels_beside(e, '{"ner_tags": ["O", "B-ORG"]}', jsonl({"tokens": ["a"], "ner_tags": [0]},
                                                                      {"tokens": ["a"], "ner_tags": [7]})),
     ["ids.jsonl:2: tag id 7 in 'ner_tags' is out of range", "names 2 labels (ids 0..1)"]),
    ("negative id", lambda e: _labels_beside(e, '["O", "B-ORG"]', jsonl({"tokens": ["a"], "ner_tags": [-1]})),
     ["ids.jsonl:1: tag id -1 in 'ner_tags' is out of range"]),
    ("record not an object", lambda e: e.train(e.file("k.jsonl", jsonl(OK, [1, 2]))),
     ["k.jsonl:2: expected an object with a 'tokens' list, found a list"]),
    ("JSON top level not a list", lambda e: e.train(e.file("top.json", "42")),
     ["top.json: expected a JSON list of objects", "found an integer 42"]),
    ("JSON syntax error",
     lambda e: e.train(e.file("syntax.json", '[{"tokens": ["a"], "ner_tags": ["O"]},\n {"tokens": ]')),
     ["syntax.json:2: invalid JSON"]),
    ("JSON nested 100,000 deep", lambda e: e.train(e.file("deep.json", "[" * 100_000 + "]" * 100_000)),
     ["deep.json: invalid JSON"]),
    # --- span files from annotation tools (text + character spans)
    ("span offsets past the end of the text",
     lambda e: e.train(e.file("past.jsonl", jsonl(SPANS_OK, {"text": "EU", "label": [[0, 9, "ORG"]]}))),
     ["past.jsonl:2: span #0 [0, 9) ORG lies outside the text (0..2 characters)"]),
    ("span start after its end",
     lambda e: e.train(e.file("order.jsonl", jsonl({"text": "EU rejects", "spans": [{"start": 5, "end": 2, "label": "ORG"}]}))),
     ["order.jsonl:1: span #0 [5, 2) ORG starts after it ends"]),
    ("span label that is no tag type",
     lambda e: e.train(e.file("lab.jsonl", jsonl({"text": "EU rejects", "label": [[0, 2, "Org Name"]]}))),
     ["lab.jsonl:1: span #0 has the label 'Org Name', holding whitespace", "rename it, e.g. 'Org_Name'"]),
    ("span label unknown to annotation.conf",
     lambda e: (e.file("brat/annotation.conf", "[entities]\nORG\nPER\n"), e.file("brat/d.txt", "EU rejects"),
                e.train(e.file("brat/d.ann", "T1\tORGG 0 2\tEU\n")))[-1],
     ["d.ann:1: T1 has the label 'ORGG', not among the known types (ORG, PER)"]),
    ("overlapping spans",
     lambda e: e.train(e.file("over.jsonl", jsonl(SPANS_OK, {"text": "Angela Merkel", "spans": [
         {"start": 0, "end": 13, "label": "PER"}, {"start": 7, "end": 13, "label": "LOC"}]}))),
     ["over.jsonl:2: span #0 [0, 13) PER 'Angela Merkel' overlaps span #1 [7, 13) LOC 'Merkel'",
      "--overlapping_spans longest"]),
    ("span text differs from the offsets",
     lambda e: e.train(e.file("drift.jsonl", jsonl({"text": "EU rejects", "spans": [
         {"start": 1, "end": 3, "label": "ORG", "text": "EU"}]}))),
     ["drift.jsonl:1: span #0 [1, 3) ORG: its text 'EU' differs from the text at those offsets 'U '",
      "the offsets have drifted"]),
    ("span file not UTF-8",
     lambda e: e.train(e.file("latin-spans.jsonl", jsonl(SPANS_OK).encode() + b'{"text": "caf\xe9", "spans": []}\n')),
     ["latin-spans.jsonl:2: invalid UTF-8 byte 0xe9"]),
    ("truncated span JSON lines",
     lambda e: e.train(e.file("cut.jsonl", jsonl(SPANS_OK) + '{"text": "EU", "spans": [{"start": 0')),
     ["cut.jsonl:2: invalid JSON"]),
    ("truncated Label Studio export",
     lambda e: e.train(e.file("ls.json", '[{"data": {"text": "EU"}, "annotations": [{"result": [\n')),
     ["ls.json:", "invalid JSON"]),
    ("Label Studio span past the end",
     lambda e: e.train(e.file("ls2.json", json.dumps([{"id": 4, "data": {"text": "EU"}, "annotations": [{"result": [
         {"type": "labels", "value": {"start": 0, "end": 7, "labels": ["ORG"]}}]}]}]))),
     ["ls2.json record #0: result #0 [0, 7) ORG lies outside the text"]),
    ("discontinuous brat span",
     lambda e: (e.file("d.txt", "EU rejects German call"),
                e.train(e.file("d.ann", "T1\tMISC 11 17;18 22\tGerman call\n")))[-1],
     ["d.ann:1: T1 is a discontinuous span (MISC 11 17;18 22)", "split it into separate annotations"]),
    ("GLiNER token index past the end",
     lambda e: e.train(e.file("g.jsonl", jsonl({"tokenized_text": ["EU", "rejects"], "ner": [[1, 4, "ORG"]]}))),
     ["g.jsonl:1: span #0 tokens 1..4 lie outside the 2 tokens of 'tokenized_text'"]),
    # --- label files
    ("labels.json not JSON",
     lambda e: _labels_beside(e, '{"ner_tags": [O, ]', jsonl({"tokens": ["a"], "ner_tags": [0]})),
     ["labels.json:1: invalid JSON"]),
    ("labels.json listing a name twice",
     lambda e: _labels_beside(e, '["O", "O"]', jsonl({"tokens": ["a"], "ner_tags": [0]})),
     ["labels.json (ner_tags): label name 'O' is listed twice"]),
    ("labels.json not a list",
     lambda e: _labels_beside(e, '{"ner_tags": "O B-ORG"}', jsonl({"tokens": ["a"], "ner_tags": [0]})),
     ["labels.json (ner_tags): expected a non-empty list of label names"]),
    ("nonexistent --label_names_file",
     lambda e: e.train(e.file("l.jsonl", jsonl({"tokens": ["a"], "ner_tags": [0]})),
                       "--label_names_file", str(e.root / "names.json")),
     ["--label_names_file", "names.json: no such file"]),
    # --- CSV
    ("CSV row with an extra field",
     lambda e: e.train(e.file("a.csv", 'tokens,ner_tags\n"EU rejects","B-ORG O"\n"a","O",extra\n')),
     ["a.csv:3: expected 2 comma-separated fields as in the header (line 1), found 3"]),
    ("CSV header naming a column twice", lambda e: e.train(e.file("b.csv", 'tokens,tokens\n"EU","O"\n')),
     ["b.csv:1: column 'tokens' appears twice in the header"]),
    ("CSV cell with a broken list",
     lambda e: e.train(e.file("c.csv", "tokens,ner_tags\n\"['EU', x]\",\"B-ORG O\"\n")),
     ["c.csv:2: cannot parse the list in column 'tokens'"]),
    # --- columns by name
    ("missing --text_column_name column",
     lambda e: e.train(e.file("m.jsonl", jsonl(OK)), "--text_column_name", "words"),
     ["m.jsonl:1: no text column 'words' (--text_column_name)"]),
    ("missing --label_column_name column",
     lambda e: e.train(e.file("n.jsonl", jsonl(OK)), "--label_column_name", "tags"),
     ["n.jsonl:1: no label column 'tags' (--label_column_name)"]),
    ("tags under an unknown column name",
     lambda e: e.train(e.file("o.jsonl", jsonl({"tokens": ["a"], "labelz": ["O"]}))),
     ["o.jsonl:1: no 'ner_tags' column for --task_name ner", "pass --label_column_name"]),
    # --- tags
    ("invalid IOB2 under --strict_labels",
     lambda e: e.train(e.file("s.txt", "EU B-ORG\nrejects I-ORG\n\nx O\ny I-PER\n"),
                       "--strict_labels", "true"),
     ["s.txt:4 word 2: invalid IOB2: 'I-PER' after 'O'", "drop --strict_labels"]),
    ("tags unknown to the model's head",
     lambda e: e.train(e.file("loc.txt", "Paris B-LOC\n"), model=e.named),
     ["the model's head knows labels", "['B-LOC']", "--ignore_mismatched_sizes"]),
    # --- flags
    ("flag value not a number", lambda e: e.train(e.good(), "--num_train_epochs", "abc"),
     ["--num_train_epochs", "invalid float value: 'abc'"]),
    ("friendly flag value not a number", lambda e: e.train(e.good(), "--epochs", "abc"),
     ["tagtune train: Invalid value for '--epochs'"]),
    ("unknown flag", lambda e: e.train(e.good(), "--frobnicate", "3"),
     ["unknown flags ['--frobnicate', '3']"]),
    ("invalid choice", lambda e: e.train(e.good(), "--save_strategy", "sometimes"),
     ["--save_strategy", "invalid choice: 'sometimes'"]),
    ("invalid data format", lambda e: e.train(e.good(), "--data_format", "xml"), ["--data_format", "'xml'"]),
    ("invalid task", lambda e: e.train(e.good(), "--task_name", "srl"), ["--task_name", "'srl'"]),
    ("zero batch size", lambda e: e.train(e.good(), "--batch-size", "0"),
     ["--per_device_train_batch_size must be >= 1, got 0"]),
    ("zero sequence length", lambda e: e.train(e.good(), "--max_seq_length", "0"),
     ["--max_seq_length must be >= 1, got 0"]),
    ("negative learning rate", lambda e: e.train(e.good(), "--learning_rate", "-1"),
     ["--learning_rate must be >= 0, got -1.0"]),
    ("NaN learning rate", lambda e: e.train(e.good(), "--learning_rate", "nan"),
     ["--learning_rate must be >= 0"]),
    ("stride not below the window", lambda e: e.train(e.good(), "--stride", "1000"),
     ["--stride 1000 must be smaller than --max_seq_length 32"]),
    ("negative sample limit", lambda e: e.train(e.good(), "--max_train_samples", "-1"),
     ["--max_train_samples must be >= 0, got -1"]),
    ("unknown engine", lambda e: e.train(e.good(), "--engine", "tpu-magic"),
     ["--engine 'tpu-magic' is not one of trainer, accelerate"]),
    ("--do_eval without validation data", lambda e: e.train(e.good(), "--do_train", "--do_eval"),
     ["--do_eval needs --validation_file"]),
    ("--do_predict without test data", lambda e: e.train(e.good(), "--do_train", "--do_predict"),
     ["--do_predict needs --test_file"]),
    ("hub data set and files together", lambda e: e.train(e.good(), "--dataset_name", "conll2003"),
     ["both --dataset_name conll2003 and --train_file were given"]),
    # --- checkpoints and output directories
    ("resume latest without a checkpoint", lambda e: e.train(e.good(), "--resume_from_checkpoint", "latest"),
     ["--resume_from_checkpoint latest: no complete checkpoint in"]),
    ("resume from a missing checkpoint",
     lambda e: e.train(e.good(), "--resume_from_checkpoint", str(e.root / "checkpoint-9")),
     ["checkpoint-9' is not a checkpoint directory"]),
    ("output directory is a file",
     lambda e: e.train(e.good(), "--output_dir", e.file("outfile", "x")),
     ["outfile' exists and is not a directory"]),
    ("output directory not empty", _output_not_empty,
     ["already exists and is not empty; pass --overwrite_output_dir"]),
    ("evaluate output holding earlier results", _earlier_results,
     ["already holds eval_results.json; pass --overwrite_output_dir"]),
    # --- models
    ("nonexistent model directory", lambda e: e.train(e.good(), model=e.root / "no-model"),
     ["model path", "no-model' does not exist or is not a directory"]),
    ("model path is a file", lambda e: e.train(e.good(), model=e.good()),
     ["good.txt' does not exist or is not a directory"]),
    ("invalid model name", lambda e: e.train(e.good(), model="bad name!!"),
     ["model 'bad name!!' is neither a local directory nor a hub name"]),
    ("model directory without config.json", lambda e: e.train(e.good(), model=e.root),
     ["has no config.json"]),
    ("config.json not JSON", _corrupt_config, ["config.json' is not a valid JSON file"]),
    ("model directory without weights", _no_weights, ["noweights' has no weights (model.safetensors)"]),
    ("truncated safetensors", _truncated_weights,
     ["model.safetensors' is not a readable safetensors file", "truncated"]),
    ("pickled weights for training", lambda e: e.train(e.good(), model=e.pickled),
     ["has only pickled weights (pytorch_model.bin)", "--allow_pickle"]),
    ("pickled weights for evaluation", lambda e: ["evaluate", str(e.pickled), e.good(), "--quiet"],
     ["has only pickled weights (pytorch_model.bin)", "--allow_pickle"]),
    ("model without label names", lambda e: ["evaluate", str(e.tiny), e.good(), "--quiet"],
     ["has no label names (id2label is LABEL_0...)"]),
    # --- evaluate
    ("evaluate data without tags",
     lambda e: ["evaluate", str(e.named), e.file("words.txt", "EU\nrejects\n"), "--quiet"],
     ["words.txt: has no tag column to evaluate against"]),
    ("evaluate CoNLL-U whose tag column holds only '_'",
     lambda e: ["evaluate", str(e.named), e.file("u.conllu", UNTAGGED_CONLLU), "--quiet"],
     ["u.conllu: has no tag column to evaluate against"]),
    ("evaluate CoNLL-U with a sentence without tags",
     lambda e: ["evaluate", str(e.named), e.file("p.conllu", TAGGED_CONLLU + "\n" + UNTAGGED_CONLLU), "--quiet"],
     ["p.conllu:4: a sentence without tags in test data whose other sentences have them",
      "tagtune evaluate needs a tag for every word"]),
    ("evaluate unknown decoding", lambda e: ["evaluate", str(e.named), e.good(), "--decoding", "beam"],
     ["--decoding 'beam' is not one of viterbi, argmax"]),
    ("evaluate zero batch size", lambda e: ["evaluate", str(e.named), e.good(), "--batch_size", "0"],
     ["tagtune evaluate: Invalid value for '--batch_size'"]),
    ("evaluate output directory is a file",
     lambda e: ["evaluate", str(e.named), e.good(), "--output_dir", e.file("outfile", "x")],
     ["outfile' exists and is not a directory"]),
    ("unknown command", lambda e: ["frobnicate"], ["No such command 'frobnicate'"]),
    ("missing argument", lambda e: ["evaluate"], ["tagtune evaluate: Missing argument"]),
]

# The same through examples/token-classification/run_ner.py (upstream flags).
RUN_NER_CASES: list[tuple[str, Callable[[Env], list[str]], list[str]]] = [
    ("run_ner: flag value not a number", lambda e: e.ner("--train_file", e.good(), "--num_train_epochs", "x"),
     ["--num_train_epochs", "invalid float value: 'x'"]),
    ("run_ner: unknown flag", lambda e: e.ner("--train_file", e.good(), "--zzz"),
     ["unknown flags ['--zzz']"]),
    ("run_ner: no data", lambda e: e.ner(), ["no data: pass --train_file"]),
    ("run_ner: arguments file not JSON", lambda e: [e.file("args.json", "{bad")],
     ["args.json: Expecting property"]),
    ("run_ner: JSON lines with only tokens",
     lambda e: e.ner("--train_file", e.file("tokens.jsonl", jsonl({"tokens": ["EU", "rejects"]}, {"tokens": ["a"]}))),
     ["tokens.jsonl: the train data has words but no tags",
      "its records have no 'ner_tags' column: add it, or name the tag column with --label_column_name",
      "--do_train needs a tag for every word"]),
    ("run_ner: CoNLL file with a single column",
     lambda e: e.ner("--train_file", e.file("words.txt", "EU\nrejects\n\nGerman\n")),
     ["words.txt: the train data has words but no tags",
      "its word lines have a single column, the word: add a tag column after it", "--do_train needs"]),
    ("run_ner: CoNLL-U XPOS column of '_'",
     lambda e: e.ner("--train_file", e.file("x.conllu", TAGGED_CONLLU), "--conllu_tag", "xpos"),
     ["x.conllu: the train data has words but no tags", "its XPOS column holds only '_'; pass --conllu_tag upos"]),
    ("run_ner: untagged validation data for --do_eval",
     lambda e: e.ner("--train_file", e.good(), "--validation_file", e.file("dev.txt", "EU\nrejects\n"), "--do_eval"),
     ["dev.txt: the validation data has words but no tags", "--do_eval needs a tag for every word"]),
    ("run_ner: untagged validation data evaluated while training",
     lambda e: e.ner("--train_file", e.good(), "--validation_file", e.file("dev.jsonl", jsonl({"tokens": ["a"]})),
                     "--eval_strategy", "epoch"),
     ["dev.jsonl: the validation data has words but no tags", "evaluation during training (--eval_strategy epoch)"]),
    ("run_ner: test data partly tagged for scoring",
     lambda e: e.ner("--train_file", e.good(), "--test_file", e.file("t.conllu", TAGGED_CONLLU + "\n" + UNTAGGED_CONLLU),
                     "--do_predict"),
     ["t.conllu:4: a sentence without tags in test data whose other sentences have them", "t.conllu:1)",
      "scoring --do_predict needs a tag for every word"]),
    ("run_ner: tokens and tags of different lengths",
     lambda e: e.ner("--train_file", e.file("b.jsonl", jsonl({"tokens": ["a", "b"], "ner_tags": ["O"]}))),
     ["b.jsonl:1: 2 words in 'tokens' but 1 tags"]),
]

# The same through examples/token-classification/run_ner_no_trainer.py (the accelerate engine).
LOOP_CASES: list[tuple[str, Callable[[Env], list[str]], list[str]]] = [
    ("run_ner_no_trainer: flag value not a number",
     lambda e: ["--model_name_or_path", str(e.tiny), "--train_file", e.good(), "--num_train_epochs", "x"],
     ["--num_train_epochs", "invalid float value: 'x'"]),
    ("run_ner_no_trainer: unknown flag",
     lambda e: ["--model_name_or_path", str(e.tiny), "--train_file", e.good(), "--zzz", "1"],
     ["unrecognized arguments: --zzz 1"]),
    ("run_ner_no_trainer: JSON lines with only tokens",
     lambda e: ["--model_name_or_path", str(e.tiny), "--output_dir", str(e.root / "out"),
                "--train_file", e.file("tokens.jsonl", jsonl({"tokens": ["EU", "rejects"]}))],
     ["tokens.jsonl: the train data has words but no tags", "no 'ner_tags' column", "training needs a tag"]),
    ("run_ner_no_trainer: untagged validation data",
     lambda e: ["--model_name_or_path", str(e.tiny), "--output_dir", str(e.root / "out"), "--train_file", e.good(),
                "--validation_file", e.file("dev.txt", "EU\nrejects\n")],
     ["dev.txt: the validation data has words but no tags", "its word lines have a single column",
      "evaluation (--validation_file) needs a tag for every word"]),
]

# Other verbs, when present.
VERB_CASES: list[tuple[str, str, Callable[[Env], list[str]], list[str]]] = [
    ("predict: nonexistent input", "predict", lambda e: ["predict", str(e.named), str(e.root / "in.txt")],
     ["in.txt' does not exist or is not a file"]),
    ("predict: invalid JSON lines input", "predict",
     lambda e: ["predict", str(e.named), e.file("in.jsonl", '{"text": "a"}\n{bad\n')],
     ["in.jsonl:2: not valid JSON"]),
    ("predict: unknown output format", "predict",
     lambda e: ["predict", str(e.named), "--text", "hi", "-f", "xml"],
     ["--output_format 'xml'"]),
    ("predict: pickled weights", "predict", lambda e: ["predict", str(e.pickled), "--text", "hi"],
     ["has only pickled weights"]),
    ("inspect: tokens and tags of different lengths", "inspect",
     lambda e: ["inspect", e.file("b.jsonl", jsonl({"tokens": ["a", "b"], "ner_tags": ["O"]})),
                "--words_only"],
     ["b.jsonl:1: 2 words in 'tokens' but 1 tags"]),
    ("inspect: truncated span file", "inspect",
     lambda e: ["inspect", e.file("cut-spans.jsonl", jsonl(SPANS_OK) + '{"text": "EU", "spans": [{"start"'), "--words_only"],
     ["cut-spans.jsonl:2: invalid JSON"]),
    ("predict: brat output without a folder", "predict",
     lambda e: ["predict", str(e.named), "--text", "EU", "-f", "brat"],
     ["--output_format brat writes a .txt and a .ann file per document: pass --output FOLDER"]),
    ("serve: port out of range", "serve", lambda e: ["serve", str(e.named), "--port", "70000"],
     ["--port 70000 is not a TCP port"]),
    ("export: nonexistent model", "export", lambda e: ["export", str(e.root / "no-model")],
     ["no-model' does not exist or is not a directory"]),
]


def build_named(path: Path) -> Path:
    """A tiny BERT whose head has named labels, as a fine-tuned tagger would."""
    from conftest import build_tiny_bert

    build_tiny_bert(path, num_labels=len(NAMES))
    config = json.loads((path / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(NAMES)}
    config["label2id"] = {name: i for i, name in enumerate(NAMES)}
    (path / "config.json").write_text(json.dumps(config))
    return path


def build_pickled(source: Path, path: Path) -> Path:
    import torch
    from safetensors.torch import load_file

    shutil.copytree(source, path)
    torch.save(load_file(path / "model.safetensors"), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> dict[str, Path]:
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("bad-input-models")
    named = build_named(root / "named")
    return {"tiny": tiny_bert_dir, "named": named, "pickled": build_pickled(named, root / "pickled")}


@pytest.fixture()
def env(tmp_path: Path, models: dict[str, Path]) -> Iterator[Env]:
    # The CLI's log handler writes to the stderr of its time: give each case one on its captured stderr.
    logger = logging.getLogger("tagtune")
    saved = logger.handlers[:]
    logger.handlers.clear()
    yield Env(tmp_path / "case", models["tiny"], models["named"], models["pickled"])
    logger.handlers[:] = saved


from conftest import run_console  # noqa: E402

run = run_console  # the name the cases use


def assert_one_error_line(code: int, captured, expected: list[str]) -> str:
    output = captured.out + captured.err
    assert "Traceback" not in output, output
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert code == 2, output
    assert len(errors) == 1, output
    for part in expected:
        assert part in errors[0], (part, errors[0])
    return errors[0]


@pytest.mark.parametrize("build, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tagtune_cli_bad_input(env: Env, build, expected: list[str], capsys: pytest.CaptureFixture) -> None:
    from tagtune.cli import invoke

    env.root.mkdir()
    argv = build(env)
    capsys.readouterr()
    assert_one_error_line(run(invoke, argv), capsys.readouterr(), expected)


@pytest.mark.parametrize("build, expected", [c[1:] for c in RUN_NER_CASES], ids=[c[0] for c in RUN_NER_CASES])
def test_run_ner_bad_input(env: Env, build, expected: list[str], capsys: pytest.CaptureFixture) -> None:
    import run_ner

    env.root.mkdir()
    argv = build(env)
    capsys.readouterr()
    assert_one_error_line(run(run_ner.main, argv), capsys.readouterr(), expected)


@pytest.mark.parametrize("build, expected", [c[1:] for c in LOOP_CASES], ids=[c[0] for c in LOOP_CASES])
def test_run_ner_no_trainer_bad_input(env: Env, build, expected: list[str],
                                      capsys: pytest.CaptureFixture) -> None:
    from tagtune.loop import main

    env.root.mkdir()
    argv = build(env)
    capsys.readouterr()
    assert_one_error_line(run(main, argv), capsys.readouterr(), expected)


@pytest.mark.parametrize("verb, build, expected", [c[1:] for c in VERB_CASES], ids=[c[0] for c in VERB_CASES])
def test_other_verbs_bad_input(env: Env, verb: str, build, expected: list[str],
                               capsys: pytest.CaptureFixture) -> None:
    from tagtune.cli import invoke

    if importlib.util.find_spec(f"tagtune.cli.{verb}_cmd") is None:
        pytest.skip(f"tagtune {verb} is not there yet")
    env.root.mkdir()
    argv = build(env)
    capsys.readouterr()
    assert_one_error_line(run(invoke, argv), capsys.readouterr(), expected)


def test_at_least_40_kinds() -> None:
    ids = [c[0] for c in CASES + RUN_NER_CASES + LOOP_CASES + VERB_CASES]
    assert len(set(ids)) == len(ids) >= 40


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_unreadable_paths(env: Env, kind: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Permission denied on the file or on its directory. Root reads everything, so there it is simulated."""
    from tagtune.cli import invoke

    env.root.mkdir()
    locked = env.root / "locked"
    data = Path(env.file("locked/train.txt", GOOD))
    target = data if kind == "file" else locked
    if os.geteuid() == 0:
        real_open, real_stat = Path.open, Path.stat

        def denied(path: Path) -> OSError:
            return PermissionError(13, "Permission denied", str(path))

        def fake_open(self: Path, *args, **kwargs):
            if self == data:
                raise denied(self)
            return real_open(self, *args, **kwargs)

        def fake_stat(self: Path, *args, **kwargs):
            if kind == "directory" and locked in self.parents:
                raise denied(self)
            return real_stat(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", fake_open)
        monkeypatch.setattr(Path, "stat", fake_stat)
    else:
        target.chmod(0)
    try:
        code = run(invoke, env.train(str(data)))
    finally:
        target.chmod(0o755)
    line = assert_one_error_line(code, capsys.readouterr(), ["train.txt", "Permission denied"])
    assert ("cannot read the file" if kind == "file" else "cannot access the file") in line


# ---------------------------------------------------------------- recoverable input is read, with warnings


def test_bom_crlf_and_tabs_are_read(env: Env, capsys) -> None:
    from tagtune.cli import invoke

    env.root.mkdir()
    data = env.file("windows.txt", "\ufeffEU\tB-ORG\r\nrejects\tO\r\n\r\nPeter Blackburn\tB-PER\r\n")
    assert run(invoke, ["evaluate", str(env.named), data, "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["eval_samples"] == 2 and metrics["eval_words"] == 3


REPAIRABLE = "EU B-ORG\nrejects I-ORG\n\na B-PER\nb O\n\nc B-ORG\n\nx O\ny I-PER\n\na O\nb I-ORG\n"


def test_invalid_iob_is_repaired_with_a_counted_warning(env: Env, capsys, caplog) -> None:
    from tagtune.cli import invoke

    env.root.mkdir()
    data = env.file("repair.txt", REPAIRABLE)
    assert run(invoke, ["evaluate", str(env.named), data, "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["eval_words"] == 9
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and "repaired" in r.getMessage()]
    assert warnings == [
        f"repaired 2 invalid IOB2 tags in 2 sentences (first: {data}:9 word 2: 'I-PER' after 'O')"]
    code = run(invoke, ["evaluate", str(env.named), data, "--quiet", "--strict_labels"])
    assert_one_error_line(code, capsys.readouterr(), [f"{data}:9 word 2: invalid IOB2: 'I-PER' after 'O'"])


@pytest.mark.parametrize("name, content, words", [
    ("words.conll", "EU\nrejects\n\nGerman\n", [2, 1]),
    ("words.jsonl", jsonl({"tokens": ["EU", "rejects"]}, {"tokens": ["German"]}), [2, 1]),
    ("words.conllu", UNTAGGED_CONLLU + "\n" + UNTAGGED_CONLLU.replace("u1", "u2"), [2, 2])])
def test_predict_on_untagged_words_is_fine(env: Env, name: str, content: str, words: list[int], capsys) -> None:
    """What training and scoring refuse, tagtune predict tags: one tag per word, no gold column."""
    from tagtune.cli import invoke

    env.root.mkdir()
    assert run(invoke, ["predict", str(env.named), env.file(name, content), "--quiet", "-f", "conll"]) == 0
    blocks = [block.splitlines() for block in capsys.readouterr().out.strip().split("\n\n")]
    assert [len(block) for block in blocks] == words
    assert all(len(line.split()) == 2 for block in blocks for line in block)  # word, predicted


def test_pickled_weights_accepted_with_allow_pickle(env: Env, capsys) -> None:
    from tagtune.cli import invoke

    env.root.mkdir()
    assert run(invoke, ["evaluate", str(env.pickled), env.good(), "--quiet", "--allow_pickle"]) == 0
    assert json.loads(capsys.readouterr().out)["eval_words"] == 2


def test_sentence_of_100000_words_is_windowed_not_truncated(env: Env) -> None:
    """Read, labelled and aligned whole: every one of the 100,000 words is owned by exactly one window."""
    from transformers import AutoTokenizer

    from tagtune.align import Aligner
    from tagtune.config import AlignConfig, DataConfig
    from tagtune.run import prepare_data

    env.root.mkdir()
    words = 100_000
    lines = ("angela B-PER\n" if i % 10 == 0 else "visited O\n" for i in range(words))
    data = env.file("long.txt", "".join(lines))
    prepared = prepare_data(DataConfig(train_file=Path(data)))
    (example,) = prepared.corpus.splits["train"]
    assert len(example.tokens) == words
    tokenizer = AutoTokenizer.from_pretrained(env.named)
    label2id = {label: i for i, label in enumerate(prepared.labels)}
    encoding = Aligner(tokenizer, AlignConfig(max_length=128), label2id).encode([example])
    columns = encoding.columns()
    assert encoding.windowed_examples == 1 and len(encoding) > words // 128
    assert max(len(ids) for ids in columns["input_ids"]) <= 128
    labelled = sum(1 for labels in columns["labels"] for label in labels if label != -100)
    assert labelled == words  # each word labelled once, in the window that owns it


# ---------------------------------------------------------------- real processes


def test_real_processes_exit_2_with_one_line(env: Env) -> None:
    """The console script and run_ner.py as separate processes: exit status, one line, no traceback."""
    env.root.mkdir()
    pickled_eval = ["evaluate", str(env.pickled), env.good(), "--quiet"]
    missing = env.train(str(env.root / "missing.txt"))
    cli = [sys.executable, "-c", "from tagtune.cli import main; main()"]
    commands = {
        "missing": (cli + missing, "missing.txt: no such file"),
        "pickled": (cli + pickled_eval, "has only pickled weights"),
        "run_ner": ([sys.executable, str(EXAMPLES / "run_ner.py"), *env.ner("--train_file", env.good(),
                                                                               "--max_seq_length", "-3")],
                    "--max_seq_length must be >= 1, got -3"),
    }
    environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    running = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=environ)
               for name, (command, _) in commands.items()}
    for name, process in running.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 2, (name, out, err)
        assert "Traceback" not in out + err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and commands[name][1] in errors[0], (name, err)


# ---------------------------------------------------------------- fuzzing what test_readers.py does not


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 9) | st.floats(allow_nan=True) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tokens", "ner_tags", "tags", "id", "doc", "words"]), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(json_values, max_size=4), names=st.none() | st.lists(st.text(max_size=3), max_size=4))
def test_fuzz_dataset_records(rows: list, names: list | None) -> None:
    """``read_hf_dataset`` (hub data and in-memory records): reads the rows or raises TagtuneError."""
    from tagtune.config import DataConfig
    from tagtune.errors import TagtuneError
    from tagtune.readers import read_hf_dataset

    class Rows(list):
        """Rows with a ``features`` mapping like a ``datasets.Dataset``: ``ner_tags`` named by ``names``."""

    dataset = Rows(rows)
    dataset.features = {"ner_tags": type("Seq", (), {"feature": type("Label", (), {"names": names})()})()}
    try:
        examples, _ = read_hf_dataset(dataset, DataConfig(dataset_name="fuzz"), "train")
    except TagtuneError as error:
        assert "\n" not in str(error)
        return
    assert all(isinstance(tag, str) for e in examples for tag in e.tags or ())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=80) | json_values.map(lambda value: json.dumps(value).encode()))
def test_fuzz_label_names_file(tmp_path: Path, content: bytes) -> None:
    """Any labels.json beside integer-id data: the ids are named, or one TagtuneError line."""
    from tagtune.config import DataConfig
    from tagtune.errors import TagtuneError
    from tagtune.readers import read_file

    (tmp_path / "labels.json").write_bytes(content)
    data = tmp_path / "ids.jsonl"
    data.write_text(jsonl({"tokens": ["a", "b"], "ner_tags": [0, 1]}))
    try:
        examples, names = read_file(data, DataConfig())
    except TagtuneError as error:
        assert "\n" not in str(error)
        return
    assert names is not None and examples[0].tags == (names[0], names[1])
