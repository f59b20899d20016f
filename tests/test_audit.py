"""Label audit: planted annotation errors (wrong type, wrong boundary, missing and spurious entities) are
found, ranked first, placed at file:line (or character offsets for span data), and written as JSON
lines; a clean sentence raises nothing; without cleanlab the audit is one line naming the install."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import NER_LABELS, run_console
from tagtune.audit import KINDS, audit_examples, is_tagger, require_cleanlab
from tagtune.checkpoint import Checkpoint, load_checkpoint
from tagtune.corpus import Example
from tagtune.errors import ConfigError
from tagtune.labels import Span

pytest.importorskip("cleanlab")

# What the stub model believes of each word; every other word is O.
BELIEF = {"peter": "B-PER", "blackburn": "I-PER", "john": "B-PER", "smith": "I-PER", "mary": "B-PER", "jones": "I-PER",
          "paris": "B-LOC", "london": "B-LOC", "berlin": "B-LOC", "tokyo": "B-LOC", "china": "B-LOC", "japan": "B-LOC",
          "reuters": "B-ORG", "eu": "B-ORG"}
CLEAN = [
    "peter blackburn visited paris on monday",
    "the eu rejects german call",
    "john smith of reuters said in london",
    "mary jones won the cup against china",
    "the bank of japan said on friday",
    "reuters said john smith was in tokyo",
    "berlin and paris have a new government",
]
# (sentence, gold tags with one planted error, expected kind, gold span, suggested span)
PLANTED = [
    ("police in paris said", ["O", "O", "B-ORG", "O"], "wrong_type", Span("ORG", 2, 3), Span("LOC", 2, 3)),
    ("peter blackburn said on tuesday", ["B-PER", "O", "O", "O", "O"], "wrong_boundary", Span("PER", 0, 1),
     Span("PER", 0, 2)),
    ("the club won in london", ["O", "O", "O", "O", "O"], "missing_entity", None, Span("LOC", 4, 5)),
    ("the team lost on monday", ["O", "O", "O", "O", "B-ORG"], "spurious_entity", Span("ORG", 4, 5), None),
]


def believed(words: list[str]) -> list[str]:
    return [BELIEF.get(w, "O") for w in words]


@pytest.fixture(scope="module")
def checkpoint(tiny_ner_dir) -> Checkpoint:
    return load_checkpoint(tiny_ner_dir)


def stub_forward(checkpoint: Checkpoint, confidence: float = 6.0):
    """Logits from a table: each sub-token strongly favours the label its word is believed to have."""
    vocab = checkpoint.tokenizer.get_vocab()
    table = torch.zeros(len(vocab), len(NER_LABELS))
    table[:, 0] = confidence
    for word, tag in BELIEF.items():
        table[vocab[word]] = 0.0
        table[vocab[word], NER_LABELS.index(tag)] = confidence

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return table[input_ids]

    return forward


def corpus() -> list[Example]:
    clean = [Example(tuple(s.split()), tuple(believed(s.split())), origin=f"train.txt:{k}") for k, s in enumerate(CLEAN * 4)]
    planted = [Example(tuple(s.split()), tuple(tags), origin=f"train.txt:{100 + k}") for k, (s, tags, *_) in enumerate(PLANTED)]
    return clean[:10] + planted[:2] + clean[10:20] + planted[2:] + clean[20:]


def test_planted_errors_are_found_first_with_their_kind_and_place(checkpoint) -> None:
    examples = corpus()
    audit = audit_examples(stub_forward(checkpoint), checkpoint.aligner(), examples, checkpoint.decoder(), "IOB2",
                           split="train", file="train.txt", fmt="conll")
    assert audit.sentences == len(examples) and audit.skipped == 0
    found = [(s.kind, s.gold, s.suggested) for s in audit.suspects]
    assert sorted(found, key=str) == sorted(((kind, gold, suggested) for _, _, kind, gold, suggested in PLANTED), key=str)
    first_words = {"wrong_type": 2, "wrong_boundary": 0, "missing_entity": 4, "spurious_entity": 4}
    for suspect in audit.suspects:
        k = [kind for _, _, kind, _, _ in PLANTED].index(suspect.kind)
        assert suspect.where == f"train.txt:{100 + k + first_words[suspect.kind]}"
        assert suspect.line == 100 + k + first_words[suspect.kind]
        assert suspect.sentence == examples.index(next(e for e in examples if e.origin == f"train.txt:{100 + k}"))
        assert 0.9 < suspect.score <= 1.0 and suspect.sentence_score < 0.1
    record = next(s for s in audit.suspects if s.kind == "wrong_type").as_dict()
    assert record["gold"] == {"type": "ORG", "start": 2, "end": 3, "text": "paris"}
    assert record["suggested"]["type"] == "LOC" and record["suggested"]["score"] > 0.9
    assert record["file"] == "train.txt" and record["split"] == "train" and record["text"] == "police in paris said"


def test_suspects_rank_by_how_little_the_model_believes_the_gold_label() -> None:
    import numpy as np

    from tagtune.audit import find_suspects

    labels = ["O", "B-LOC", "B-ORG"]
    sure = np.array([[0.998, 0.001, 0.001], [0.001, 0.998, 0.001]])  # "in <place>", the model's reading
    examples, gold, probs = [], [], []
    for k in range(20):
        examples.append(Example(("in", "x"), ("O", "B-LOC"), origin=f"d.txt:{3 * k}"))
        gold.append([0, 1])
        probs.append(sure)
    for k in range(5):  # cleanlab keeps at least one example of a label: some right ORG
        examples.append(Example(("in", "z"), ("O", "B-ORG"), origin=f"d.txt:{200 + 3 * k}"))
        gold.append([0, 2])
        probs.append(np.array([[0.998, 0.001, 0.001], [0.001, 0.001, 0.998]]))
    for k, orgish in enumerate((0.0009, 0.00001)):  # gold ORG; the model is sure of LOC, less or more sure not ORG
        examples.append(Example(("in", "y"), ("O", "B-ORG"), origin=f"d.txt:{100 + k}"))
        gold.append([0, 2])
        probs.append(np.array([[0.998, 0.001, 0.001], [0.001, 0.999 - orgish, orgish]]))
    tags = [["O", "B-ORG" if e.tokens[1] == "z" else "B-LOC"] for e in examples]
    suspects, flagged = find_suspects(examples, gold, tags, probs, labels, "IOB2", fmt="conll")
    assert flagged == 2
    assert [(s.where, s.kind) for s in suspects] == [("d.txt:102", "wrong_type"), ("d.txt:101", "wrong_type")]
    assert suspects[0].score > suspects[1].score


def test_clean_data_raises_no_suspect_and_unknown_tags_are_skipped(checkpoint) -> None:
    clean = [Example(tuple(s.split()), tuple(believed(s.split()))) for s in CLEAN * 3]
    unknown = Example(("paris",), ("B-GPE",))
    audit = audit_examples(stub_forward(checkpoint), checkpoint.aligner(), clean + [unknown], checkpoint.decoder(), "IOB2")
    assert audit.suspects == [] and audit.skipped == 1 and audit.summary()["unknown_tags"] == ["B-GPE"]


def test_kinds_are_named_from_the_annotation_side() -> None:
    assert KINDS["spurious"] == "missing_entity" and KINDS["missed"] == "spurious_entity"


def test_is_tagger(tiny_ner_dir, tiny_bert_dir, tmp_path) -> None:
    assert is_tagger(tiny_ner_dir) and not is_tagger(tiny_bert_dir) and not is_tagger(tmp_path)


def write_conll(path: Path, examples: list[Example]) -> Path:
    lines = []
    for example in examples:
        lines += [f"{w} {t}" for w, t in zip(example.tokens, example.tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_inspect_audits_with_a_tagger_and_writes_json_lines(tiny_ner_dir, checkpoint, tmp_path, monkeypatch) -> None:
    from tagtune.cli import app

    monkeypatch.setattr(Checkpoint, "forward", lambda self: stub_forward(self))
    data = write_conll(tmp_path / "train.txt", corpus())
    out = tmp_path / "suspects.jsonl"
    result = CliRunner().invoke(app, ["inspect", str(data), "--model", str(tiny_ner_dir), "--audit_output", str(out),
                                      "--json", "--top", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout[result.stdout.index("{"):])
    assert found["audit"]["suspects"] == 4 and len(found["audit"]["top"]) == 2
    assert found["audit"]["kinds"] == {kind: 1 for _, _, kind, _, _ in PLANTED}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and records[:2] == found["audit"]["top"]
    lines = data.read_text().splitlines()
    for record in records:  # file:line points at the first word of the suspect span
        span = record["gold"] or record["suggested"]
        assert record["where"] == f"{data}:{record['line']}"
        assert lines[record["line"] - 1].split()[0] == span["text"].split()[0]

    table = CliRunner().invoke(app, ["inspect", str(data), "--model", str(tiny_ner_dir), "--quiet"])
    assert table.exit_code == 0, table.output
    assert "Likely annotation errors: 4 suspect span(s)" in table.stdout and "ORG 'paris' -> LOC 'paris'" in table.stdout


def test_cli_audit_of_span_data_gives_character_offsets(tiny_ner_dir, tmp_path, monkeypatch) -> None:
    from tagtune.cli import app

    monkeypatch.setattr(Checkpoint, "forward", lambda self: stub_forward(self))
    records = [{"text": s, "label": [[s.index(w), s.index(w) + len(w), BELIEF[w][2:]] for w in s.split()
                                     if BELIEF.get(w, "O").startswith("B-")]} for s in CLEAN * 3]
    records[5] = {"text": "we met in tokyo today", "label": [[10, 15, "ORG"]]}
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "suspects.jsonl"
    result = CliRunner().invoke(app, ["inspect", str(data), "--model", str(tiny_ner_dir), "--audit_output", str(out),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    suspects = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(s["kind"], s["gold"]["char_start"], s["gold"]["char_end"], s["suggested"]["type"]) for s in suspects] == [
        ("wrong_type", 10, 15, "LOC")]
    assert suspects[0]["line"] == 6 and suspects[0]["where"] == f"{data}:6 word 4"  # the record's line


def test_without_cleanlab_the_audit_is_one_line(tiny_ner_dir, tmp_path, monkeypatch, capsys) -> None:
    from tagtune.cli import app, invoke

    monkeypatch.setitem(sys.modules, "cleanlab", None)  # import cleanlab now raises ImportError
    with pytest.raises(ConfigError, match=r"the label audit needs cleanlab: pip install 'tagtune\[audit\]'"):
        require_cleanlab()
    data = write_conll(tmp_path / "train.txt", corpus())
    assert run_console(invoke, ["inspect", str(data), "--model", str(tiny_ner_dir)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: the label audit needs cleanlab: pip install 'tagtune[audit]' (or pip install cleanlab)"]
    assert CliRunner().invoke(app, ["inspect", str(data), "--model", str(tiny_ner_dir), "--no_audit",
                                    "--quiet"]).exit_code == 0


def test_audit_output_needs_a_tagger(tiny_bert_dir, tmp_path) -> None:
    from tagtune.cli import app

    data = write_conll(tmp_path / "train.txt", corpus())
    result = CliRunner().invoke(app, ["inspect", str(data), "--model", str(tiny_bert_dir), "--audit_output",
                                      str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "--audit_output needs a fine-tuned tagger as --model" in result.output


def test_cli_evaluate_audit_shares_the_scoring_pass_and_fills_the_report(tiny_ner_dir, tmp_path, monkeypatch) -> None:
    from tagtune.cli import app

    monkeypatch.setattr(Checkpoint, "forward", lambda self: stub_forward(self))
    data = write_conll(tmp_path / "test.txt", corpus())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["evaluate", str(tiny_ner_dir), str(data), "--audit", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["eval_likely_annotation_errors"] == 4
    records = [json.loads(line) for line in (out / "suspects.jsonl").read_text().splitlines()]
    assert sorted(r["kind"] for r in records) == sorted(kind for _, _, kind, _, _ in PLANTED)
    report = json.loads((out / "report.json").read_text())
    assert report["likely_annotation_errors"]["count"] == 4 and report["likely_annotation_errors"]["top"] == records
    page = (out / "report.html").read_text()
    assert "<h2>Likely annotation errors</h2>" in page and page.count('<span class="who">model</span>') == 4
    again = CliRunner().invoke(app, ["evaluate", str(tiny_ner_dir), str(data), "-o", str(out)])
    assert again.exit_code != 0 and "suspects.jsonl" in again.output  # earlier results are not replaced silently


def test_two_suspects_of_one_sentence_with_equal_scores_are_ordered_by_position(checkpoint) -> None:
    examples = corpus() + [Example(("police", "in", "paris", "and", "london"), ("O", "O", "B-ORG", "O", "B-ORG"),
                                   origin="train.txt:300")]
    audit = audit_examples(stub_forward(checkpoint), checkpoint.aligner(), examples, checkpoint.decoder(), "IOB2",
                           fmt="conll")
    both = [s.where for s in audit.suspects if s.sentence == len(examples) - 1]
    assert both == ["train.txt:302", "train.txt:304"]
