"""``tagtune inspect``: the data doctor (format, sizes, labels, invalid tags, lengths, leakage; spans of
annotation-tool data) as tables or JSON; with a fine-tuned ``--model``, the label audit (likely
annotation errors, :mod:`tagtune.audit`)."""

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
        model_name_or_path: Annotated[str | None, typer.Option("--model_name_or_path", "--model", help="Tokenizer to measure sentences in sub-tokens (default: the packaged MiniLM when installed); a fine-tuned tagger (or its ONNX export) also audits the labels: the spans it most confidently contradicts.")] = None,
        max_length: Annotated[int, typer.Option("--max_length", "--max_seq_length", help="Model input length to check sentences against.")] = 128,
        words_only: Annotated[bool, typer.Option("--words_only", help="Measure sentences in words; load no tokenizer.")] = False,
        task_name: Annotated[str, typer.Option("--task_name", help="ner, pos or chunk: which tag column to read.")] = "ner",
        label_column: Annotated[int | None, typer.Option("--label_column", help="0-based tag column of CoNLL files.")] = None,
        label_names_file: Annotated[Path | None, typer.Option("--label_names_file", help="JSON naming integer ids.")] = None,
        format: Annotated[str, typer.Option("--format", help="auto, conll, conllu, json, jsonl, csv, spans, labelstudio or brat.")] = "auto",
        annotator: Annotated[str, typer.Option("--annotator", help="Label Studio exports: the annotation read per task: latest, first, an annotator id or e-mail, or predictions.")] = "latest",
        examples: Annotated[int, typer.Option("--examples", help="Places listed per kind of problem.")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
        top: Annotated[int, typer.Option("--top", min=0, help="Likely annotation errors shown (label audit).")] = 20,
        audit_output: Annotated[Path | None, typer.Option("--audit_output", help="Write every likely annotation error as JSON lines (one record per suspect span: file, line, offsets, gold and suggested spans, score).")] = None,
        no_audit: Annotated[bool, typer.Option("--no_audit", help="With a fine-tuned --model: measure lengths only, no label audit.")] = False,
        batch_size: Annotated[int, typer.Option("--batch_size", min=1, help="Label audit: windows per forward pass.")] = 32,
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
        auditing = model_name_or_path is not None and not no_audit and _is_tagger(model_name_or_path)
        if audit_output is not None and not auditing:
            fail(f"--audit_output needs a fine-tuned tagger as --model (got {model_name_or_path or 'none'})")
        if auditing:
            from tagtune.audit import require_cleanlab

            require_cleanlab()  # before the data is read: one line, no wasted minutes
        model, tokenizer = _tokenizer(model_name_or_path, words_only)
        diagnosis = diagnose(files, cfg, tokenizer=tokenizer, max_length=max_length, keep=examples,
                             spans=SpanConfig(annotator=annotator))
        audit = None
        if auditing:
            from tagtune.audit import audit_files, write_suspects

            audit = audit_files(model_name_or_path, files, cfg, spans=SpanConfig(annotator=annotator),  # type: ignore[arg-type]
                                batch_size=batch_size)
            if audit_output is not None:
                write_suspects(audit_output, audit)
                typer.echo(f"{len(audit.suspects)} likely annotation errors -> {audit_output}", err=True)
        if as_json:
            found = {"model": model, **diagnosis.as_dict()}
            if audit is not None:
                found["audit"] = {**audit.summary(), "top": [s.as_dict() for s in audit.suspects[:top]]}
            typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        else:
            _render(diagnosis, model)
            if audit is not None:
                _render_audit(audit, top)
        if strict and diagnosis.has_problems():
            raise typer.Exit(1)


def _is_tagger(name: str) -> bool:
    from tagtune.audit import is_tagger

    return is_tagger(name)


def _render_audit(audit, top: int) -> None:
    import os
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(highlight=False, width=140 if wide else None)
    summary = audit.summary()
    kinds = ", ".join(f"{kind.replace('_', ' ')} {n}" for kind, n in sorted(summary["kinds"].items())) or "none"
    table = Table(title=f"Likely annotation errors: {summary['suspects']} suspect span(s) in {summary['sentences']:,} "
                        f"sentences ({kinds}); the {min(top, summary['suspects'])} most likely",
                  title_justify="left", show_lines=True)
    for column in ("score", "kind", "where", "gold -> suggested", "sentence"):
        table.add_column(column, justify="right" if column == "score" else "left", overflow="fold")
    for suspect in audit.suspects[:top]:
        table.add_row(f"{suspect.score:.3f}", suspect.kind.replace("_", " "), escape(suspect.where),
                      escape(suspect.describe()), escape(_context(suspect)))
    console.print(table)
    if summary["skipped_sentences"]:
        console.print(f"[yellow]{summary['skipped_sentences']:,} sentence(s) not audited: tags the model does not "
                      f"know ({escape(', '.join(summary['unknown_tags']))})[/]")


def _context(suspect, width: int = 6) -> str:
    """The words around the suspect span, the span in brackets."""
    spans = [s for s in (suspect.gold, suspect.suggested) if s is not None]
    first, last = min(s.start for s in spans), max(s.end for s in spans)
    tokens = suspect.tokens
    left = ("... " if first - width > 0 else "") + " ".join(tokens[max(0, first - width):first])
    right = " ".join(tokens[last:last + width]) + (" ..." if last + width < len(tokens) else "")
    return f"{left} [{' '.join(tokens[first:last])}] {right}".strip()


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
