"""Predictions as HTML: the text with its entities as ``<mark>`` elements, a legend and a table.

The markup and colours are those of the service's page (``static/app.js`` builds the same elements in
the browser, ``static/style.css`` styles both), so ``tagtune predict --format html`` writes a file that
looks like the page: one self-contained document (the style sheet inlined; no script, no external
reference) for a batch of texts, written as the predictions stream in. Every piece of user text is
escaped; each mark is ``<mark class="ent cN" data-label data-start data-end title="LABEL · score S">``
with ``data-start``/``data-end`` the entity's character offsets (Python string indices).
"""

from __future__ import annotations

import html
from collections.abc import Container, Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol, TextIO

from tagtune.labels import split_tag

PALETTE_SIZE = 10  # classes c0..c9 in static/style.css


class EntityLike(Protocol):
    start: int
    end: int
    label: str
    score: float | None  # None: no score to show (gold entities)
    text: str


def entity_types(labels: Iterable[str]) -> list[str]:
    """The entity types of a label list, in their order, each once.

    >>> entity_types(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "MISC"])
    ['PER', 'LOC', 'MISC']
    """
    types: list[str] = []
    for label in labels:
        prefix, kind = split_tag(label)
        if prefix != "O" and kind and kind not in types:
            types.append(kind)
    return types


class Colours:
    """Colour class per entity type: the model's types in label order, then types met later.

    >>> colours = Colours(["O", "B-PER", "I-PER", "B-LOC"])
    >>> colours("LOC"), colours("PER"), colours("MISC"), colours.types
    ('c1', 'c0', 'c2', ['PER', 'LOC', 'MISC'])
    """

    def __init__(self, labels: Iterable[str] = ()):
        self.types = entity_types(labels)

    def __call__(self, kind: str) -> str:
        if kind not in self.types:
            self.types.append(kind)
        return f"c{self.types.index(kind) % PALETTE_SIZE}"


def _text(value: str) -> str:
    return html.escape(value, quote=False)


def _attr(value: Any) -> str:
    return html.escape(str(value), quote=True)


def mark(entity: EntityLike, surface: str, colours: Colours, flagged: bool = False) -> str:
    """One entity as a ``<mark>`` (``surface``: its characters in the text; ``flagged``: class ``bad``)."""
    title = _attr(entity.label) + ("" if entity.score is None else f" · score {entity.score:.3f}")
    return (f'<mark class="ent {colours(entity.label)}{" bad" if flagged else ""}" data-label="{_attr(entity.label)}" '
            f'data-start="{entity.start}" data-end="{entity.end}" title="{title}">{_text(surface)}</mark>')


def render_text(text: str, entities: Sequence[EntityLike], colours: Colours, flagged: Container[int] = ()) -> str:
    """``text`` escaped, with each entity marked (those whose index is in ``flagged`` with class ``bad``);
    overlapping or empty entities are left unmarked (they are still listed by :func:`render_table`).

    >>> from tagtune.predict import Entity
    >>> render_text("Ann <b> & Bo", [Entity(0, 3, "PER", 0.9, "Ann")], Colours(["B-PER"]))
    '<mark class="ent c0" data-label="PER" data-start="0" data-end="3" title="PER · score 0.900">Ann</mark> &lt;b&gt; &amp; Bo'
    """
    parts: list[str] = []
    cursor = 0
    for index, entity in enumerate(entities):
        if entity.start < cursor or entity.end <= entity.start or entity.end > len(text):
            continue
        parts.append(_text(text[cursor:entity.start]))
        parts.append(mark(entity, text[entity.start:entity.end], colours, index in flagged))
        cursor = entity.end
    parts.append(_text(text[cursor:]))
    return "".join(parts)


def render_table(entities: Sequence[EntityLike]) -> str:
    """The entities as a table: text, label, score, start, end."""
    rows = "".join(
        f'<tr><td>{_text(e.text)}</td><td>{_text(e.label)}</td><td class="num">{e.score:.3f}</td>'
        f'<td class="num">{e.start}</td><td class="num">{e.end}</td></tr>' for e in entities)
    return ('<table class="entities"><thead><tr><th scope="col">Text</th><th scope="col">Label</th>'
            '<th scope="col" class="num">Score</th><th scope="col" class="num">Start</th>'
            f'<th scope="col" class="num">End</th></tr></thead><tbody>{rows}</tbody></table>')


def render_legend(colours: Colours) -> str:
    items = "".join(f'<li><span class="swatch {colours(kind)}" aria-hidden="true"></span>{_text(kind)}</li>'
                    for kind in list(colours.types))
    return f'<ul class="legend">{items}</ul>'


@lru_cache(maxsize=1)
def style_sheet() -> str:
    """The page's style sheet (``static/style.css``), inlined by the HTML files."""
    return resources.files("tagtune").joinpath("static/style.css").read_text(encoding="utf-8")


def render_document(text: str, entities: Sequence[EntityLike], colours: Colours, number: int,
                    identifier: str | None = None) -> str:
    """One document: a heading, the marked text and its entity table."""
    name = f"Document {number}" + (f" ({identifier})" if identifier is not None else "")
    count = f"{len(entities)} {'entity' if len(entities) == 1 else 'entities'}"
    return (f'<section class="document" aria-labelledby="doc-{number}">\n'
            f'<h2 id="doc-{number}">{_text(name)}</h2>\n'
            f'<div class="doc" tabindex="0" aria-labelledby="doc-{number}">{render_text(text, entities, colours)}</div>\n'
            f'<details><summary>{count}</summary>\n<div class="table-wrap">{render_table(entities)}</div>\n'
            '</details>\n</section>\n')


def page_start(colours: Colours, metadata: Mapping[str, Any] | None = None, title: str = "tagtune predictions") -> str:
    """The head of a self-contained page: inlined style sheet, model description, legend."""
    meta = dict(metadata or {})
    described = [f"Model {meta['model']}" if meta.get("model") else None,
                 f"backend {meta['backend']} ({meta.get('precision', '?')})" if meta.get("backend") else None,
                 f"{len(meta['labels'])} labels" if meta.get("labels") else None]
    description = " · ".join(part for part in described if part)
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{_text(title)}</title>\n<style>\n{style_sheet()}</style>\n</head>\n<body>\n'
            f'<header><h1>{_text(title)}</h1><p class="meta">{_text(description)}</p></header>\n<main>\n'
            f'<section aria-labelledby="labels"><h2 id="labels">Labels</h2>{render_legend(colours)}</section>\n')


def page_end(count: int) -> str:
    return f'<p class="meta">{count} {"document" if count == 1 else "documents"}.</p>\n</main>\n</body>\n</html>\n'


def write_html(documents: Iterable[tuple[str, Sequence[EntityLike], str | None]], out: TextIO,
               labels: Sequence[str] = (), metadata: Mapping[str, Any] | None = None,
               title: str = "tagtune predictions") -> int:
    """Write one self-contained page for ``(text, entities, id)`` triples as they come; returns their number."""
    colours = Colours(labels)
    out.write(page_start(colours, metadata, title))
    count = 0
    for text, entities, identifier in documents:
        count += 1
        out.write(render_document(text, entities, colours, count, identifier))
    out.write(page_end(count))
    return count


def render_page(documents: Iterable[tuple[str, Sequence[EntityLike], str | None]], labels: Sequence[str] = (),
                metadata: Mapping[str, Any] | None = None) -> str:
    """:func:`write_html` into a string."""
    import io

    buffer = io.StringIO()
    write_html(documents, buffer, labels, metadata)
    return buffer.getvalue()


__all__: Sequence[str] = (
    "Colours",
    "entity_types",
    "render_document",
    "render_page",
    "render_table",
    "render_text",
    "style_sheet",
    "write_html",
)
