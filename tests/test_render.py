from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tagtune
from tagtune.predict import Entity
from tagtune.render import Colours, entity_types, render_page, render_text

HOSTILE = 'Angela Merkel <script>alert("x")</script> & Paris \'quoted\' <b>bold</b> 😀 London'


class _Page(HTMLParser):
    """The marks of a page (attributes and text) and its text outside tags, per ``div.doc``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.docs: list[str] = []
        self.marks: list[dict] = []
        self.tags: list[str] = []
        self._in_doc = 0
        self._mark: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "div" and "doc" in (values.get("class") or "").split():
            self._in_doc += 1
            self.docs.append("")
        elif tag == "mark" and self._in_doc:
            self._mark = {**values, "text": ""}

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._in_doc:
            self._in_doc -= 1
        elif tag == "mark" and self._mark is not None:
            self.marks.append(self._mark)
            self._mark = None

    def handle_data(self, data: str) -> None:
        if self._in_doc:
            self.docs[-1] += data
        if self._mark is not None:
            self._mark["text"] += data


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _spans(marks: list[dict]) -> list[tuple[int, int, str, str]]:
    return [(int(m["data-start"]), int(m["data-end"]), m["data-label"], m["text"]) for m in marks]


def test_text_is_escaped_and_marks_equal_the_entities() -> None:
    def entity(surface: str, label: str, score: float) -> Entity:
        start = HOSTILE.index(surface)
        return Entity(start, start + len(surface), label, score, surface)

    entities = [entity("Angela Merkel", "PER", 0.91234), entity("<script>", "ORG", 0.5), entity("Paris", "LOC", 0.75),
                entity("London", "LOC", 0.6)]  # London comes after 😀: one character in Python
    assert all(HOSTILE[e.start:e.end] == e.text for e in entities)
    html = render_text(HOSTILE, entities, Colours(["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]))
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;</mark>alert(\"x\")&lt;/script&gt;" in html
    parsed = _parse(f'<div class="doc">{html}</div>')
    assert parsed.docs == [HOSTILE]  # nothing added, nothing lost
    assert _spans(parsed.marks) == [(e.start, e.end, e.label, e.text) for e in entities]
    assert [m["class"] for m in parsed.marks] == ["ent c0", "ent c2", "ent c1", "ent c1"]
    assert parsed.marks[0]["title"] == "PER · score 0.912"


def test_overlapping_and_out_of_range_entities_are_not_marked() -> None:
    entities = [Entity(0, 6, "PER", 0.9, "Angela"), Entity(3, 10, "LOC", 0.9, "ela Mer"), Entity(7, 7, "X", 1, ""),
                Entity(200, 210, "LOC", 0.9, "")]
    parsed = _parse(f'<div class="doc">{render_text(HOSTILE, entities, Colours())}</div>')
    assert _spans(parsed.marks) == [(0, 6, "PER", "Angela")] and parsed.docs == [HOSTILE]


def test_labels_with_quotes_stay_in_their_attribute() -> None:
    html = render_text("ab", [Entity(0, 1, 'X" onmouseover="alert(1)', 0.5, "a")], Colours())
    marks = _parse(f'<div class="doc">{html}</div>').marks
    assert "onmouseover" not in marks[0] and marks[0]["data-label"] == 'X" onmouseover="alert(1)'


def test_colours_follow_the_model_labels_and_wrap_around() -> None:
    labels = ["O"] + [f"{p}-T{i}" for i in range(12) for p in "BI"]
    assert entity_types(labels) == [f"T{i}" for i in range(12)]
    colours = Colours(labels)
    assert [colours(f"T{i}") for i in (0, 9, 10, 11)] == ["c0", "c9", "c0", "c1"]


def test_page_is_self_contained(tiny_ner_dir: Path) -> None:
    tagger = tagtune.load(tiny_ner_dir, precision="fp32")
    texts = [HOSTILE, "", "Peter Blackburn visited Paris and London."]
    documents = [(p.text, p.entities, str(i) if i else None) for i, p in enumerate(tagger.predict(texts))]
    page = render_page(documents, tagger.labels, tagger.metadata())
    parsed = _parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert not re.search(r"(?i)(https?:|//|url\(|@import|src=)", page.replace("<!doctype html>", ""))
    assert "<style>" in page and "mark.ent" in page  # static/style.css inlined
    assert parsed.docs == texts
    expected = [(e.start, e.end, e.label, e.text) for _, entities, _ in documents for e in entities]
    assert _spans(parsed.marks) == expected and expected
    assert "Document 2 (1)" in page and "3 documents." in page


def test_cli_predict_format_html(tiny_ner_dir: Path, tmp_path: Path) -> None:
    from tagtune.cli import app

    out = tmp_path / "tagged.html"
    texts = [HOSTILE, "Angela Merkel visited Paris."]
    args = ["predict", str(tiny_ner_dir), "--text", texts[0], "--text", texts[1], "--format", "html",
            "-o", str(out), "--quiet", "--precision", "fp32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    parsed = _parse(page)
    assert parsed.docs == texts and "script" not in parsed.tags
    tagger = tagtune.load(tiny_ner_dir, precision="fp32")
    assert _spans(parsed.marks) == [(e.start, e.end, e.label, e.text) for t in texts for e in tagger(t)]
    result = CliRunner().invoke(app, ["predict", str(tiny_ner_dir), "--text", "x", "-f", "html", "--quiet"])
    assert result.exit_code == 0 and result.stdout.lstrip().startswith("<!doctype html>")


@pytest.mark.parametrize("fmt", ["jsonl", "spacy"])
def test_other_formats_unchanged(tiny_ner_dir: Path, fmt: str) -> None:
    from tagtune.cli import app

    result = CliRunner().invoke(app, ["predict", str(tiny_ner_dir), "--text", "Paris", "-f", fmt, "--quiet"])
    assert result.exit_code == 0 and result.stdout.startswith("{")
