"""The evaluation report's figures as PNG bytes: scores per type, entity confusion, learning curves,
reliability of entity scores, precision and recall against a minimum score.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never through
``pyplot``, so the global backend of the calling process (a notebook, a GUI) is left alone and no
display is needed. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tagtune.metrics import NONE, OUTCOMES

OUTCOME_COLOURS = {
    "exact": "#4caf50", "wrong_type": "#ff9800", "wrong_boundary": "#ffc107",
    "wrong_type_and_boundary": "#9c27b0", "missed": "#f44336", "spurious": "#607d8b",
}
_SCORE_COLOURS = {"precision": "#5c6bc0", "recall": "#26a69a", "f1": "#ef5350"}
_DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    # No timestamps or software tags in the file: the same report gives the same bytes.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def plot_per_type(metrics: Mapping[str, Any]) -> bytes:
    """Horizontal bars of precision, recall and F1 per entity type, with the micro average on top.

    Args:
        metrics: :meth:`tagtune.metrics.EntityScorer.result`.
    """
    per_type = metrics.get("per_type", {})
    rows = [("overall", metrics)] + [(t, s) for t, s in per_type.items()]
    figure = _figure(7.0, 1.4 + 0.55 * len(rows))
    axes = figure.add_subplot()
    height = 0.26
    for k, key in enumerate(("precision", "recall", "f1")):
        positions = [i + (k - 1) * height for i in range(len(rows))]
        values = [100 * float(scores.get(key, 0.0)) for _, scores in rows]
        bars = axes.barh(positions, values, height=height, color=_SCORE_COLOURS[key], label=key)
        axes.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=7, padding=2)
    axes.set_yticks(range(len(rows)), [f"{t} ({int(s.get('number', 0))})" for t, s in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, 108)
    axes.set_xlabel("%")
    axes.set_title("Entity precision, recall and F1 per type (gold count)")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 if len(rows) > 3 else -0.25), ncol=3, fontsize=8)
    return _png(figure)


def plot_confusion(confusion: Mapping[str, Any]) -> bytes:
    """Two panels: the gold-type x predicted-type matrix (missed and spurious on its edges), and the
    outcome of every gold entity per type as stacked bars (spurious predictions beside them).

    Args:
        confusion: :meth:`tagtune.metrics.EntityConfusion.result`.
    """
    outcomes: Mapping[str, Mapping[str, int]] = confusion["outcomes"]
    types = list(outcomes)
    rows, columns = types + [NONE], types + [NONE]
    matrix = confusion["matrix"]
    values = [[matrix.get(r, {}).get(c, 0) for c in columns] for r in rows]
    figure = _figure(11.0, 2.0 + 0.5 * max(3, len(rows)))
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.25])

    peak = max((v for row in values for v in row), default=0) or 1
    left.imshow([[math.log1p(v) for v in row] for row in values], cmap="Blues", vmin=0, vmax=math.log1p(peak))
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if value:
                dark = math.log1p(value) > 0.6 * math.log1p(peak)
                left.text(j, i, str(value), ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
    left.set_xticks(range(len(columns)), [c if c != NONE else "missed" for c in columns], rotation=45, ha="right")
    left.set_yticks(range(len(rows)), [r if r != NONE else "spurious" for r in rows])
    left.set_xlabel("predicted type")
    left.set_ylabel("gold type")
    left.set_title("Entity confusion (overlapping spans)")

    bottoms = [0] * len(types)
    for outcome in OUTCOMES:
        counts = [outcomes[t][outcome] for t in types]
        right.barh(range(len(types)), counts, left=bottoms, color=OUTCOME_COLOURS[outcome],
                   label=outcome.replace("_", " "))
        bottoms = [b + c for b, c in zip(bottoms, counts)]
    right.set_yticks(range(len(types)), types)
    right.invert_yaxis()
    right.set_xlabel("entities (gold; spurious: predicted)")
    right.set_title("Outcome per type")
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    return _png(figure)


def learning_series(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """``(step, value)`` series of a Trainer-style log: ``loss``, ``eval_loss``, ``learning_rate``, ``dev_f1``.

    Entries without ``step`` are numbered by their position; ``dev_f1`` reads ``eval_f1`` or
    ``eval_overall_f1``. Non-numeric values are skipped.

    >>> learning_series([{"loss": 2.0, "step": 5}, {"eval_f1": 0.5, "step": 5}, {"train_runtime": 3.0}])["dev_f1"]
    [(5.0, 0.5)]
    """
    series: dict[str, list[tuple[float, float]]] = {"loss": [], "eval_loss": [], "learning_rate": [], "dev_f1": []}
    sources = {"loss": ("loss",), "eval_loss": ("eval_loss",), "learning_rate": ("learning_rate", "lr"),
               "dev_f1": ("eval_f1", "eval_overall_f1")}
    for position, entry in enumerate(log_history):
        step = entry.get("step", position)
        for name, keys in sources.items():
            value = next((entry[k] for k in keys if k in entry), None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(step, (int, float)):
                series[name].append((float(step), float(value)))
    return series


def plot_learning_curves(log_history: Sequence[Mapping[str, Any]]) -> bytes | None:
    """Loss (train and dev), learning rate and dev F1 against the optimizer step; ``None`` when the
    log holds none of them."""
    series = learning_series(log_history)
    panels = [("loss", ("loss", "eval_loss")), ("learning rate", ("learning_rate",)), ("dev F1", ("dev_f1",))]
    panels = [(title, [n for n in names if series[n]]) for title, names in panels]
    panels = [(title, names) for title, names in panels if names]
    if not panels:
        return None
    figure = _figure(4.0 * len(panels), 3.2)
    for axes, (title, names) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for name in names:
            steps, values = zip(*series[name])
            marker = "o" if len(values) < 30 else None
            axes.plot(steps, values, marker=marker, markersize=3, label={"loss": "train", "eval_loss": "dev"}.get(name, name))
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if len(names) > 1:
            axes.legend(fontsize=8)
        if title == "learning rate":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    return _png(figure)


def plot_reliability(summary: Mapping[str, Any]) -> bytes:
    """Reliability diagram of entity scores: accuracy against mean score per bin, raw (``before``) and
    calibrated (``after``, when present), with the diagonal of perfect calibration and the share of
    entities per bin beneath.

    Args:
        summary: :meth:`tagtune.calibration.EntityScores.summary`.
    """
    figure = _figure(6.0, 5.2)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="#9e9e9e", linestyle="--", linewidth=1, label="perfect")
    styles = {"before": ("#ef5350", "raw"), "after": ("#5c6bc0", "calibrated")}
    total = max(int(summary.get("entities", 0)), 1)
    width = 0.1 / (2 if "after" in summary else 1)
    for k, key in enumerate(k for k in ("before", "after") if k in summary):
        colour, name = styles[key]
        bins = summary[key]["reliability"]
        top.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", markersize=4,
                 color=colour, label=f"{name} (ECE {summary[key]['ece']:.3f})")
        bottom.bar([b["low"] + width * (k + 0.5) for b in bins], [b["count"] / total for b in bins], width=width,
                   color=colour)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1.02)
    top.set_ylabel("share of entities exactly right")
    top.set_title("Reliability of entity scores")
    top.legend(fontsize=8, loc="upper left")
    top.grid(alpha=0.3)
    bottom.set_xlabel("entity score")
    bottom.set_ylabel("share")
    return _png(figure)


def plot_thresholds(rows: Sequence[Mapping[str, float]]) -> bytes:
    """Precision, recall and F1 of the entities kept by a minimum score, against that score.

    Args:
        rows: :func:`tagtune.calibration.threshold_table`.
    """
    figure = _figure(6.0, 3.4)
    axes = figure.add_subplot()
    thresholds = [row["min_score"] for row in rows]
    for key in ("precision", "recall", "f1"):
        # Precision of no entity at all is undefined: no point there.
        values = [100 * row[key] if row["kept"] or key == "recall" else math.nan for row in rows]
        axes.plot(thresholds, values, marker="o", markersize=3, color=_SCORE_COLOURS[key], label=key)
    axes.set_xlabel("--min_score")
    axes.set_ylabel("%")
    axes.set_title("Entities kept by a minimum score")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _png(figure)
