"""The evaluation report: one self-contained ``report.html`` plus its PNG figures and a ``report.json``.

:func:`write_report` is the single call behind ``tagtune evaluate --output_dir`` and the end of
training: scores per type (computed by :mod:`tagtune.metrics`, never here), an entity confusion
analysis from span sets, learning curves from a Trainer-style ``log_history`` (a list of dicts, so any
training loop can feed its own), the calibration of entity scores (reliability diagram, expected
calibration error) and precision and recall against a minimum score when given them, the sentences
with the most errors, gold and predicted spans highlighted, and the run's configuration. The HTML needs no network: CSS is inline, images are
``data:`` URIs and there is no script.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from tagtune.corpus import Example
from tagtune.fileio import atomic_write_json, atomic_write_text
from tagtune.labels import Span, get_entities
from tagtune.metrics import OUTCOMES, EntityConfusion, EntityMatch, score
from tagtune.render import Colours, render_text, style_sheet

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
REPORT_DATA_FILE = "report.json"
PLOTS_DIR = "plots"
# The report's own layout; entities are marked and coloured as everywhere (tagtune.render, static/style.css).
_CSS = """
table{border-collapse:collapse;margin:.6em 0;font-size:14px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
img{max-width:100%;display:block;margin:.6em 0}.muted{color:var(--muted);font-size:13px}
.sentence{border:1px solid var(--line);border-radius:6px;padding:.5em .8em;margin:.8em 0}
.line{line-height:2.1em}.who{display:inline-block;width:3.2em;color:var(--muted);font-size:12px}
mark.bad{outline:2px dashed var(--error-line)}.errs{font-size:13px;color:var(--muted);margin:.3em 0 0 3.2em}
.kv td{text-align:left;font-family:ui-monospace,monospace;font-size:12px}
"""


class _Mark(NamedTuple):
    start: int
    end: int
    label: str
    score: float | None
    text: str


def load_log_history(model_dir: str | Path) -> list[dict] | None:
    """The ``log_history`` of the Trainer's ``trainer_state.json`` in ``model_dir`` (or its newest
    ``checkpoint-N``); ``None`` when there is none."""
    model_dir = Path(model_dir)
    candidates = [model_dir / "trainer_state.json"]
    checkpoints = [p for p in model_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    candidates += [p / "trainer_state.json" for p in sorted(checkpoints, key=lambda p: -int(p.name.split("-")[-1]))]
    for path in candidates:
        if path.is_file():
            try:
                history = json.loads(path.read_text(encoding="utf-8")).get("log_history")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(history, list):
                return history
    return None


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted ``key: value`` pairs of a nested mapping or dataclass; secrets (``token``, ``*_token``) left out.

    >>> flatten_config({"model": {"name": "bert", "token": "hf_x"}, "lr": 3e-5})
    {'model.name': 'bert', 'lr': 3e-05}
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        return {prefix.rstrip("."): config} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = str(key)
        if name == "token" or name.endswith("_token"):
            continue
        if isinstance(value, Mapping) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            flat.update(flatten_config(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value if isinstance(value, (int, float, bool, str, type(None))) else str(value)
    return flat


def analyse(examples: Sequence[Example], predictions: Sequence[Sequence[str]]
            ) -> tuple[dict, list[tuple[int, list[EntityMatch]]]]:
    """:meth:`EntityConfusion.result` over all sentences, and ``(index, matches)`` of each sentence
    that has an error, most errors first (ties: shorter sentence, then input order)."""
    confusion = EntityConfusion()
    wrong: list[tuple[int, list[EntityMatch]]] = []
    for index, (example, tags) in enumerate(zip(examples, predictions, strict=True)):
        matches = confusion.update(example.tags, tags)  # type: ignore[arg-type]
        if any(m.outcome != "exact" for m in matches):
            wrong.append((index, matches))
    wrong.sort(key=lambda item: (-sum(m.outcome != "exact" for m in item[1]), len(examples[item[0]].tokens), item[0]))
    return confusion.result(), wrong


def write_report(
    output_dir: str | Path,
    examples: Sequence[Example],
    predictions: Sequence[Sequence[str]],
    metrics: Mapping[str, Any] | None = None,
    log_history: Sequence[Mapping[str, Any]] | None = None,
    config: Any = None,
    *,
    split: str = "test",
    title: str | None = None,
    max_errors: int = 30,
    scores: Mapping[str, Any] | None = None,
    suspects: Sequence[Any] | None = None,
) -> Path:
    """Write ``report.html``, ``report.json`` and ``plots/*.png`` into ``output_dir``.

    Args:
        examples: Labelled sentences, in the order of ``predictions``.
        predictions: One predicted tag per word of each example.
        metrics: :meth:`tagtune.metrics.EntityScorer.result` of these predictions; computed when ``None``.
        log_history: Trainer-style log entries (``trainer_state.json``'s ``log_history``, or a training
            loop's own list of dicts with ``step``, ``loss``, ``learning_rate``, ``eval_f1``...).
        config: The run's configuration (mapping or dataclass, nested allowed), shown as a table.
        split: Which split the examples are, for the headings.
        title: The page title (default: ``Evaluation report (<split>)``).
        max_errors: Sentences shown in the worst-errors table.
        scores: :meth:`tagtune.calibration.EntityScores.summary` of these predictions: a "Confidence"
            section with the reliability diagram and the precision/recall table against ``--min_score``.
        suspects: The label audit's :class:`tagtune.audit.Suspect` spans, most likely first: a section
            "Likely annotation errors" shows the first ``max_errors``, gold and suggested spans marked.

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: The examples have no gold tags, or their counts differ from the predictions'.
    """
    from tagtune.report_plots import (
        plot_confusion,
        plot_learning_curves,
        plot_per_type,
        plot_reliability,
        plot_thresholds,
    )

    if any(example.tags is None for example in examples):
        raise ValueError("the report needs gold tags: every example must be labelled")
    output_dir = Path(output_dir)
    metrics = dict(metrics) if metrics else score([e.tags for e in examples], predictions)  # type: ignore[misc]
    confusion, wrong = analyse(examples, predictions)
    images = {"per_type": plot_per_type(metrics), "confusion": plot_confusion(confusion)}
    curves = plot_learning_curves(log_history) if log_history else None
    if curves is not None:
        images["learning_curves"] = curves
    if scores:
        images["reliability"] = plot_reliability(scores)
        images["min_score"] = plot_thresholds(scores["thresholds"])
    for name, png in images.items():
        path = output_dir / PLOTS_DIR / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    shown = [_error_record(examples[i], predictions[i], matches) for i, matches in wrong[:max_errors]]
    flat_config = flatten_config(config) if config is not None else {}
    atomic_write_json(output_dir / REPORT_DATA_FILE, {
        "split": split, "sentences": len(examples), "words": sum(len(e.tokens) for e in examples),
        "metrics": metrics, "confusion": confusion, "sentences_with_errors": len(wrong), "worst_errors": shown,
        "plots": [f"{PLOTS_DIR}/{name}.png" for name in images], "config": flat_config,
        **({"entity_scores": dict(scores)} if scores else {}),
        **({"likely_annotation_errors": {"count": len(suspects), "top": [s.as_dict() for s in suspects[:max_errors]]}}
           if suspects is not None else {}),
    })
    page = _render(title or f"Evaluation report ({split})", split, examples, metrics, confusion, wrong[:max_errors],
                   predictions, len(wrong), images, log_history, flat_config, scores,
                   (suspects[:max_errors], len(suspects)) if suspects is not None else None)
    atomic_write_text(output_dir / REPORT_FILE, page)
    return output_dir / REPORT_FILE


def write_run_report(output_dir: str | Path, split: str, examples: Sequence[Example], result: Any,
                     log_history: Sequence[Mapping[str, Any]] | None = None, config: Any = None,
                     scores: Mapping[str, Any] | None = None) -> Path | None:
    """:func:`write_report` at the end of a training run, from an ``EvalResult`` (``metrics``, ``predictions``).

    Returns ``None`` without writing when the result has no scores (unlabelled data); a failure is
    logged as a warning rather than raised, so that a figure never costs a finished training run.
    """
    if result is None or not result.metrics or len(result.predictions) != len(examples):
        return None
    try:
        path = write_report(output_dir, examples, result.predictions, result.metrics, log_history, config, split=split,
                            scores=scores)
    except Exception as error:  # noqa: BLE001 - matplotlib, disk...: the model is saved already
        logger.warning("could not write the evaluation report into %s: %s", output_dir, error)
        return None
    logger.info("evaluation report: %s", path)
    return path


def _span_dict(span: Span | None, tokens: Sequence[str]) -> dict | None:
    if span is None:
        return None
    return {"type": span.type, "start": span.start, "end": span.end, "text": " ".join(tokens[span.start:span.end])}


def _error_record(example: Example, tags: Sequence[str], matches: Sequence[EntityMatch]) -> dict:
    errors = [{"outcome": m.outcome, "gold": _span_dict(m.gold, example.tokens), "pred": _span_dict(m.pred, example.tokens)}
              for m in matches if m.outcome != "exact"]
    return {"origin": example.origin, "id": example.id, "tokens": list(example.tokens), "gold": list(example.tags or ()),
            "pred": list(tags), "errors": errors}


# --------------------------------------------------------------------------------------------------
# HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _highlight(tokens: Sequence[str], spans: Sequence[tuple[Span, bool]], colours: Colours) -> str:
    """The words joined by spaces, each span marked; ``True`` flags a span that is an error."""
    starts = list(accumulate((len(token) + 1 for token in tokens), initial=0))
    spans = sorted(spans, key=lambda item: item[0].start)
    marks = [_Mark(starts[span.start], starts[span.end] - 1, span.type, None, "") for span, _ in spans]
    return render_text(" ".join(tokens), marks, colours, {i for i, (_, bad) in enumerate(spans) if bad})


def _describe(match: EntityMatch, tokens: Sequence[str]) -> str:
    def text(span: Span) -> str:
        return f"{span.type} '{' '.join(tokens[span.start:span.end])}'"

    what = match.outcome.replace("_", " ")
    if match.gold is None:
        return f"{what}: {text(match.pred)}"  # type: ignore[arg-type]
    if match.pred is None:
        return f"{what}: {text(match.gold)}"
    return f"{what}: {text(match.gold)} predicted as {text(match.pred)}"


def _errors_section(examples, predictions, wrong, total_wrong: int, colours) -> str:
    parts = [f'<p class="muted">{total_wrong} of {len(examples)} sentences hold at least one error; the '
             f"{len(wrong)} with the most errors are shown. Dashed: a span that is not an exact match.</p>"]
    for index, matches in wrong:
        example = examples[index]
        gold_spans = [(m.gold, m.outcome != "exact") for m in matches if m.gold is not None]
        exact = {m.gold for m in matches if m.outcome == "exact"}
        pred_spans = [(p, p not in exact) for p in get_entities(predictions[index])]
        errors = "<br>".join(_e(_describe(m, example.tokens)) for m in matches if m.outcome != "exact")
        parts.append(
            f'<div class="sentence"><div class="muted">{_e(example.origin or f"sentence #{index}")} · '
            f'{sum(m.outcome != "exact" for m in matches)} error(s)</div>'
            f'<div class="line"><span class="who">gold</span>{_highlight(example.tokens, gold_spans, colours)}</div>'
            f'<div class="line"><span class="who">pred</span>{_highlight(example.tokens, pred_spans, colours)}</div>'
            f'<div class="errs">{errors}</div></div>'
        )
    return "".join(parts)


def _curves_table(log_history: Sequence[Mapping[str, Any]]) -> str:
    from tagtune.report_plots import learning_series

    series = learning_series(log_history)
    rows = [(name, len(points), f"{points[-1][1]:.6g}", f"{points[-1][0]:g}") for name, points in series.items() if points]
    return _table(("series", "points", "last value", "at step"), rows) if rows else ""


def _confidence_section(scores: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    rows = [("raw", scores["entities"], f"{scores['before']['ece']:.4f}", "1")]
    if "after" in scores:
        rows.append(("calibrated", scores["entities"], f"{scores['after']['ece']:.4f}", f"{scores['temperature']:.3f}"))
    ece = _table(("entity scores", "predicted entities", "expected calibration error", "temperature"), rows)
    which = "calibrated " if "after" in scores else ""
    thresholds = _table(("--min_score", "entities kept", "precision", "recall", "F1"),
                        [(f"{r['min_score']:g}", r["kept"], _pct(r["precision"]), _pct(r["recall"]), _pct(r["f1"]))
                         for r in scores["thresholds"]])
    return (
        "<h2>Confidence</h2><p class=\"muted\">An entity's score is the mean probability of its words' labels; "
        "it is calibrated when the share of entities exactly right among those scored about <i>s</i> is about "
        "<i>s</i>. Expected calibration error: the mean gap over 10 score bins, weighted by entities. "
        "Calibrate with <code>tagtune evaluate MODEL DEV --calibrate</code> (tags never change, only scores).</p>"
        f"{ece}{_img(images['reliability'], 'reliability of entity scores')}"
        f"<h2>Minimum score</h2><p class=\"muted\">Precision and recall of the entities kept by "
        f"<code>--min_score S</code> (tagtune predict, tagtune serve), on the {which}scores a tagger reports; "
        f"{scores['gold_entities']} gold entities.</p>{thresholds}{_img(images['min_score'], 'entities kept by a minimum score')}"
    )


def _suspects_section(suspects: Sequence[Any], total: int, colours: Colours) -> str:
    parts = [f'<p class="muted">{total} span(s) whose gold labels the model contradicts beyond its confidence '
             f"thresholds (cleanlab, confident learning); the {len(suspects)} most likely annotation errors are "
             "shown, with the score the model gives the gold label being wrong. All of them: suspects.jsonl.</p>"]
    for suspect in suspects:
        gold = [(suspect.gold, True)] if suspect.gold is not None else []
        suggested = [(suspect.suggested, True)] if suspect.suggested is not None else []
        parts.append(
            f'<div class="sentence"><div class="muted">{_e(suspect.where)} · {_e(suspect.kind.replace("_", " "))} · '
            f"score {suspect.score:.3f}</div>"
            f'<div class="line"><span class="who">gold</span>{_highlight(suspect.tokens, gold, colours)}</div>'
            f'<div class="line"><span class="who">model</span>{_highlight(suspect.tokens, suggested, colours)}</div></div>'
        )
    return "".join(parts)


def _render(title, split, examples, metrics, confusion, wrong, predictions, total_wrong, images, log_history,
            flat_config, scores=None, suspects=None) -> str:
    types = list(confusion["outcomes"])
    colours = Colours(types)
    per_type = metrics.get("per_type", {})
    summary = _table(
        ("split", "sentences", "words", "gold entities", "predicted entities", "precision", "recall", "F1", "accuracy"),
        [(split, len(examples), sum(len(e.tokens) for e in examples), metrics.get("number", 0),
          sum(confusion["predicted"].values()), _pct(metrics["precision"]), _pct(metrics["recall"]),
          _pct(metrics["f1"]), _pct(metrics.get("accuracy", 0.0)))])
    type_rows = [(t, s.get("number", 0), confusion["predicted"].get(t, 0), confusion["outcomes"].get(t, {}).get("exact", 0),
                  _pct(s["precision"]), _pct(s["recall"]), _pct(s["f1"])) for t, s in per_type.items()]
    type_table = _table(("type", "gold", "predicted", "exact", "precision", "recall", "F1"), type_rows)
    outcome_rows = [(t, *(confusion["outcomes"][t][o] for o in OUTCOMES)) for t in types]
    outcome_rows.append(("all", *(confusion["totals"][o] for o in OUTCOMES)))
    outcome_table = _table(("type", *(o.replace("_", " ") for o in OUTCOMES)), outcome_rows)
    sections = [
        f"<h1>{_e(title)}</h1><p class=\"muted\">tagtune {_e(_version())} · entity scores as seqeval's default "
        "mode (upstream run_ner.py) computes them</p>",
        f"<h2>Scores</h2>{summary}<h2>Per type</h2>{type_table}{_img(images['per_type'], 'scores per type')}",
        "<h2>Entity confusion</h2><p class=\"muted\">Each gold entity is an exact match, a wrong type (same "
        "boundaries), a wrong boundary (overlapping prediction of its type), a wrong type and boundary, or "
        "missed (no overlapping prediction); predictions overlapping no gold entity are spurious (counted "
        f"under the predicted type).</p>{outcome_table}{_img(images['confusion'], 'entity confusion')}",
    ]
    if "learning_curves" in images:
        sections.append(f"<h2>Learning curves</h2>{_curves_table(log_history)}"
                        f"{_img(images['learning_curves'], 'learning curves')}")
    if scores:
        sections.append(_confidence_section(scores, images))
    sections.append(f"<h2>Worst errors</h2>{_errors_section(examples, predictions, wrong, total_wrong, colours)}")
    if suspects is not None:
        sections.append(f"<h2>Likely annotation errors</h2>{_suspects_section(*suspects, colours)}")
    if flat_config:
        sections.append("<h2>Configuration</h2>" + _table(("setting", "value"), sorted(flat_config.items()), "kv"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>\n{style_sheet()}{_CSS}</style></head><body>{''.join(sections)}</body></html>\n")


def _version() -> str:
    try:
        return version("tagtune")
    except PackageNotFoundError:
        return "(development)"
