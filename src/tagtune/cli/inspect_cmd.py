"""``tagtune inspect``: the data doctor (format, sizes, labels, invalid tags, lengths, leakage; spans of
annotation-tool data) as tables or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}
_BAR = 30


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        data: Annotated[list[Path] | None, typer.Argument(help="Data files, or a directory holding train/valid(ation)/test files.", show_default=False)] = None,
        train: Annotated[Path | None, typer.Option("--train", help="The training file.")] = None,
        validation: Annotated[Path | None, typer.Option("--validation", help="The validation file.")] = None,
        test: Annotated[Path | None, typer.Option("--test", help="The test file.")] = None,
        model_name_or_path: Annotated[str | None, typer.Option("--model_name_or_path", "--model", help="Tokenizer to measure sentences in sub-tokens (default: the packaged MiniLM when installed).")] = None,
        max_length: Annotated[int, typer.Option("--max_length", "--max_seq_length", help="Model input length to check sentences against.")] = 128,
        words_only: Annotated[bool, typer.Option("--words_only", help="Measure sentences in words; load no tokenizer.")] = False,
        task_name: Annotated[str, typer.Option("--task_name", help="ner, pos or chunk: which tag column to read.")] = "ner",
        label_column: Annotated[int | None, typer.Option("--label_column", help="0-based tag column of CoNLL files.")] = None,
        label_names_file: Annotated[Path | None, typer.Option("--label_names_file", help="JSON naming integer ids.")] = None,
        format: Annotated[str, typer.Option("--format", help="auto, conll, conllu, json, jsonl, csv, spans, labelstudio or brat.")] = "auto",
        annotator: Annotated[str, typer.Option("--annotator", help="Label Studio exports: the annotation read per task: latest, first, an annotator id or e-mail, or predictions.")] = "latest",
        examples: Annotated[int, typer.Option("--examples", help="Places listed per kind of problem.")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
        strict: Annotated[bool, typer.Option("--strict", help="Exit with status 1 when errors or warnings are found.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Inspect DATA: splits, label distribution, invalid IOB/BIOES tags, lengths, duplicates and leakage."""
        import json

        from tagtune.cli import fail
        from tagtune.config import DataConfig
        from tagtune.doctor import diagnose, resolve_inputs
        from tagtune.progress import set_quiet
        from tagtune.readers import FORMATS
        from tagtune.spans import SpanConfig

        set_quiet(quiet)
        if task_name not in ("ner", "pos", "chunk"):
            fail(f"--task_name '{task_name}' is not one of ner, pos, chunk")
        if format not in ("auto", *FORMATS):
            fail(f"--format '{format}' is not one of auto, {', '.join(FORMATS)}")
        if max_length < 3:
            fail(f"--max_length must be at least 3, got {max_length}")
        files = resolve_inputs(data or [], train, validation, test)
        cfg = DataConfig(task_name=task_name, label_column=label_column, label_names_file=label_names_file,  # type: ignore[arg-type]
                         format=format)  # type: ignore[arg-type]
        model, tokenizer = _tokenizer(model_name_or_path, words_only)
        diagnosis = diagnose(files, cfg, tokenizer=tokenizer, max_length=max_length, keep=examples,
                             spans=SpanConfig(annotator=annotator))
        if as_json:
            typer.echo(json.dumps({"model": model, **diagnosis.as_dict()}, indent=2, ensure_ascii=False))
        else:
            _render(diagnosis, model)
        if strict and diagnosis.has_problems():
            raise typer.Exit(1)


def _tokenizer(name: str | None, words_only: bool) -> tuple[str | None, Any]:
    """The tokenizer to measure with: the one asked for, else the packaged model's, else none."""
    from tagtune.align import load_tokenizer
    from tagtune.errors import ConfigError

    if words_only:
        return None, None
    if name is None:
        from tagtune.defaults import packaged_model_dir

        try:
            name = str(packaged_model_dir())
        except ConfigError:
            return None, None
    return name, load_tokenizer(name)


def _render(diagnosis, model: str | None) -> None:
    import os
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # Piped into a file or a log, 80 columns would fold every path; a terminal gets its own width.
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(highlight=False, width=140 if wide else None)
    splits = diagnosis.splits
    formats = ", ".join(dict.fromkeys(s.format for s in splits.values()))
    console.print(f"[bold]{len(splits)} split(s)[/] · format {formats} · scheme {diagnosis.scheme} · "
                  f"{len(diagnosis.labels)} labels")
    console.print(f"labels: {' '.join(diagnosis.labels) or '(none: unlabelled)'}")

    table = Table(title="Splits", title_justify="left")
    for column in ("split", "file", "format", "sentences", "words", "documents", "longest (words)", "scheme"):
        table.add_column(column, justify="left" if column in ("split", "file", "format", "scheme") else "right",
                         overflow="fold")
    for s in splits.values():
        table.add_row(s.split, s.path, s.format, f"{s.sentences:,}", f"{s.words:,}", f"{s.documents:,}",
                      str(s.longest), s.scheme)
    console.print(table)

    if any(s.spans for s in splits.values()):
        console.print(_distribution("Spans per label", {n: s.spans for n, s in splits.items()}))
        console.print("words split at span boundaries: " + ", ".join(f"{n} {s.split_words:,}" for n, s in splits.items()))
    if any(s.entities for s in splits.values()):
        console.print(_distribution("Entities per type", {n: s.entities for n, s in splits.items()}))
    if any(s.tags for s in splits.values()):
        console.print(_distribution("Tags (words)", {n: s.tags for n, s in splits.items()}))
    console.print(_lengths_table(diagnosis.lengths, model))
    console.print(_duplicates_table(diagnosis.duplicates))

    if diagnosis.problems:
        table = Table(title="Problems", title_justify="left", show_lines=True)
        for column in ("severity", "count", "problem", "first places"):
            table.add_column(column, justify="right" if column == "count" else "left", overflow="fold")
        for p in diagnosis.problems:
            # Places quote the data, whose brackets rich would read as markup.
            table.add_row(f"[{_STYLE[p.severity]}]{p.severity}[/]", f"{p.count:,}", escape(p.message),
                          escape("\n".join(p.where)))
        console.print(table)
    counts = {sev: sum(p.severity == sev for p in diagnosis.problems) for sev in ("error", "warning", "info")}
    console.print(f"[bold]{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s)[/]")


def _distribution(title: str, counts: dict[str, dict[str, int]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("label")
    for split in counts:
        table.add_column(split, justify="right")
    names = list(dict.fromkeys(name for per_split in counts.values() for name in per_split))
    totals = {split: sum(c.values()) or 1 for split, c in counts.items()}
    for name in names:
        table.add_row(name, *(f"{c.get(name, 0):,} ({100 * c.get(name, 0) / totals[s]:.1f}%)" if name in c else "[red]-[/]"
                              for s, c in counts.items()))
    return table


def _lengths_table(lengths: dict, model: str | None):
    from rich.table import Table

    unit = lengths["unit"]
    edges = lengths["edges"]
    title = f"Sentence lengths in {unit}" + (f" ({model})" if model else " (no tokenizer: --model_name_or_path to count sub-tokens)")
    table = Table(title=title, title_justify="left")
    table.add_column(unit)
    per_split = lengths["splits"]
    for split in per_split:
        table.add_column(split, justify="right")
    table.add_column("")
    peak = max((c for entry in per_split.values() for c in entry["histogram"]), default=0) or 1
    for k in range(len(edges) - 1):
        row = [entry["histogram"][k] for entry in per_split.values()]
        bar = "█" * round(_BAR * max(row, default=0) / peak)
        table.add_row(f"{edges[k]}-{edges[k + 1] - 1}", *(f"{n:,}" for n in row), f"[cyan]{bar}[/]")
    table.add_row("mean / longest", *(f"{e['mean']:.1f} / {e['longest']}" for e in per_split.values()), "", end_section=True)
    if lengths.get("max_length"):
        table.add_row(f"> {lengths['max_length']} (--max_length)", *(f"{e['over_max_length']:,}" for e in per_split.values()), "")
    if lengths.get("model_limit"):
        table.add_row(f"> {lengths['model_limit']} (model limit)", *(f"{e['over_model_limit']:,}" for e in per_split.values()), "")
    return table


def _duplicates_table(duplicates: dict):
    from rich.table import Table

    table = Table(title="Duplicate sentences", title_justify="left")
    for column in ("split", "repeated within split", "also in train: exact", "near", "of 5+ words"):
        table.add_column(column, justify="left" if column == "split" else "right")
    shared = duplicates["shared_with_train"]
    for split, repeats in duplicates["within_split"].items():
        other = shared.get(split)
        cells = ("", "", "") if other is None else (f"{other['exact']:,}", f"{other['near']:,}", f"{other['five_words_or_more']:,}")
        table.add_row(split, f"{repeats:,}", *cells)
    return table
