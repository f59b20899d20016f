"""``tagtune predict``: tag raw text or pre-split words with a model (torch or ONNX), streaming."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        model: Annotated[Path, typer.Argument(help="A model directory, or a folder written by tagtune export.")],
        inputs: Annotated[list[Path] | None, typer.Argument(help="Files: .txt (one document per line), .jsonl with a "
                                                             "'text' field (span files of annotation tools too), a Label "
                                                             "Studio export, brat .ann/.txt or a folder of them, CoNLL, "
                                                             "JSON tokens; '-' reads stdin lines.")] = None,
        text: Annotated[list[str] | None, typer.Option("--text", "-t", help="A text to tag (repeatable).")] = None,
        input_format: Annotated[str, typer.Option("--input_format", help="auto, lines, text (whole file is one "
                                                  "document), jsonl, json, conll, conllu, spans, labelstudio, brat.")] = "auto",
        text_field: Annotated[str, typer.Option("--text_field", help="Field holding the text in JSON records.")] = "text",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout); a folder "
                                                    "for brat.")] = None,
        output_format: Annotated[str, typer.Option("--output_format", "--format", "-f",
                                                   help="jsonl, conll, spacy, doccano, labelstudio (pre-annotations "
                                                   "with the model name and scores), brat (.txt + .ann per document, "
                                                   "into the --output folder) or html (one self-contained page).")] = "jsonl",
        aggregation: Annotated[str, typer.Option("--aggregation", help="first, average, max or simple.")] = "first",
        backend: Annotated[str, typer.Option("--backend", help="auto, torch or onnx.")] = "auto",
        precision: Annotated[str, typer.Option("--precision", help="auto (int8 on CPUs with VNNI, bf16 on GPUs), fp32, bf16 or int8 (torch).")] = "auto",
        decoding: Annotated[str | None, typer.Option("--decoding", help="viterbi or argmax (default: the model's).")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch_size", help="Windows per forward pass.")] = None,
        threads: Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")] = None,
        min_score: Annotated[float | None, typer.Option("--min_score", min=0.0, max=1.0, help="Drop entities scored below this (calibrated when the model has calibration.json); pick it from report.html's precision/recall table.")] = None,
        review: Annotated[bool, typer.Option("--review", help="Keep the entities below --min_score, marked \"review\": true, instead of dropping them.")] = False,
        task_name: Annotated[str, typer.Option("--task_name", help="Tag column of labelled CoNLL input: ner, pos, chunk.")] = "ner",
        device: Annotated[str, typer.Option("--device", help="cpu or cuda[:n] (torch backend).")] = "cpu",
        allow_pickle: Annotated[bool, typer.Option("--allow_pickle", help="Accept pickled weights (unsafe).")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Tag texts with MODEL: entities with character offsets, label, score and surface text."""
        from tagtune.cli import fail
        from tagtune.predict import load
        from tagtune.predict_io import OUTPUT_FORMATS, resolve_input_format
        from tagtune.progress import set_quiet
        from tagtune.readers_spans import is_brat

        set_quiet(quiet)
        if output_format not in OUTPUT_FORMATS:
            fail(f"--output_format '{output_format}' is not one of {', '.join(OUTPUT_FORMATS)}")
        if not inputs and not text:
            fail("nothing to tag: give input files, '-' for stdin, or --text 'some text'")
        if output_format == "brat" and (output is None or str(output) == "-"):
            fail("--output_format brat writes a .txt and a .ann file per document: pass --output FOLDER")
        for path in inputs or []:
            if str(path) != "-" and not path.is_file() and not (path.is_dir() and is_brat(path)):
                fail(f"input '{path}' does not exist or is not a file")
        sources = [(path, None if str(path) == "-" else resolve_input_format(path, input_format, text_field))  # type: ignore[arg-type]
                   for path in inputs or []]
        _quiet_transformers()
        tagger = load(model, backend=backend, device=device, allow_pickle=allow_pickle,  # type: ignore[arg-type]
                      aggregation=aggregation, precision=precision, decoding=decoding, batch_size=batch_size, threads=threads,
                      min_score=min_score, review=review)
        pairs = _predict_all(tagger, sources, text or [], text_field, task_name, progress=not quiet)
        count = _write(pairs, output, output_format, tagger.metadata())
        from tagtune.align import warn_long_words

        warn_long_words("input", tagger.long_words, tagger.first_long_word, tagger.aligner.word_cap)
        typer.echo(f"tagged {count} documents with {tagger.backend} ({tagger.precision})"
                   + (f" -> {output}" if output else ""), err=True)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _predict_all(tagger, sources, texts: list[str], text_field: str, task_name: str, progress: bool) -> Iterator:
    from tagtune.predict_io import Document, iter_documents

    if texts:
        yield from _paired(tagger, (Document(text=t) for t in texts), words=False, progress=False)
    for path, fmt in sources:
        if fmt is None:  # stdin, one document per line
            documents: Iterable[Document] = (Document(text=line.rstrip("\r\n")) for line in sys.stdin)
            yield from _paired(tagger, documents, words=False, progress=progress)
            continue
        words = fmt in ("conll", "conllu", "json", "tokens-jsonl")
        yield from _paired(tagger, iter_documents(path, fmt, text_field=text_field, task_name=task_name),
                           words=words, progress=progress)


def _paired(tagger, documents: Iterable, *, words: bool, progress: bool) -> Iterator:
    """Predictions with their documents; the tagger reads documents lazily, in order."""
    from tagtune.corpus import Example

    pending: deque = deque()

    def feed():
        for document in documents:
            pending.append(document)
            yield Example(document.words, doc=document.document, origin=document.origin) if words else document.text

    stream = tagger.predict_examples(feed(), progress=progress) if words else tagger.predict(feed(), progress=progress)
    for prediction in stream:
        yield prediction, pending.popleft()


def _write(pairs: Iterator, output: Path | None, fmt: str, metadata: dict | None = None) -> int:
    from tagtune.fileio import atomic_open
    from tagtune.predict_io import write_brat, write_predictions

    if fmt == "brat":
        assert output is not None
        return write_brat(pairs, output)
    if output is None or str(output) == "-":
        return write_predictions(pairs, sys.stdout, fmt, metadata)  # type: ignore[arg-type]
    with atomic_open(output) as handle:  # readers see the old file or the complete new one
        return write_predictions(pairs, handle, fmt, metadata)  # type: ignore[arg-type]
