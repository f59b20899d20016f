"""``tagtune predict``: tag raw text or pre-split words with a model (torch or ONNX), streaming; with
``--engine ray``, folders of files into sharded output with a pool of Ray workers (:mod:`tagtune.ray_predict`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer

ENGINES = ("local", "ray")


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
        output_format: Annotated[str | None, typer.Option("--output_format", "--format", "-f",
                                                          help="jsonl (default), conll, spacy, doccano, labelstudio "
                                                          "(pre-annotations with the model name and scores), brat (.txt + "
                                                          ".ann per document, into the --output folder) or html (one "
                                                          "self-contained page); --engine ray: parquet (default) or "
                                                          "jsonl shards.")] = None,
        aggregation: Annotated[str, typer.Option("--aggregation", help="first, average, max or simple.")] = "first",
        backend: Annotated[str, typer.Option("--backend", help="auto, torch or onnx.")] = "auto",
        precision: Annotated[str, typer.Option("--precision", help="auto (int8 on CPUs with VNNI, bf16 on GPUs), fp32, bf16 or int8 (torch).")] = "auto",
        decoding: Annotated[str | None, typer.Option("--decoding", help="viterbi or argmax (default: the model's).")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch_size", help="Windows per forward pass.")] = None,
        threads: Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores; --engine "
                                                    "ray: per worker, default the CPUs / --num_workers).")] = None,
        min_score: Annotated[float | None, typer.Option("--min_score", min=0.0, max=1.0, help="Drop entities scored below this (calibrated when the model has calibration.json); pick it from report.html's precision/recall table.")] = None,
        review: Annotated[bool, typer.Option("--review", help="Keep the entities below --min_score, marked \"review\": true, instead of dropping them.")] = False,
        task_name: Annotated[str, typer.Option("--task_name", help="Tag column of labelled CoNLL input: ner, pos, chunk.")] = "ner",
        device: Annotated[str, typer.Option("--device", help="cpu or cuda[:n] (torch backend).")] = "cpu",
        allow_pickle: Annotated[bool, typer.Option("--allow_pickle", help="Accept pickled weights (unsafe).")] = False,
        engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (a pool of workers on Ray "
                                            "Data, this machine or a cluster; needs --output_dir).")] = "local",
        ray_address: Annotated[str | None, typer.Option("--ray_address", help="--engine ray: a running Ray cluster "
                                                        "(default: RAY_ADDRESS, else Ray starts on this machine).")] = None,
        num_workers: Annotated[int | None, typer.Option("--num_workers", min=1, help="--engine ray: tagger workers "
                                                        "(default: the cluster's CPUs / --threads).")] = None,
        output_dir: Annotated[Path | None, typer.Option("--output_dir", help="--engine ray: folder of output shards "
                                                        "(one per input file), errors.jsonl and summary.json; a rerun "
                                                        "skips complete shards.")] = None,
        max_chars: Annotated[int, typer.Option("--max_chars", min=1, help="--engine ray: a longer document is a bad "
                                               "record (errors.jsonl), not tagged.")] = 1_000_000,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Tag texts with MODEL: entities with character offsets, label, score and surface text."""
        from tagtune.cli import fail
        from tagtune.predict import PredictConfig, load
        from tagtune.predict_io import OUTPUT_FORMATS, resolve_input_format
        from tagtune.progress import set_quiet
        from tagtune.readers_spans import is_brat

        set_quiet(quiet)
        if engine not in ENGINES:
            fail(f"--engine '{engine}' is not one of {', '.join(ENGINES)}")
        if engine == "ray":
            from tagtune.ray_predict import RayConfig, ShardConfig, require_ray

            require_ray()  # before anything slow: without Ray, one line saying what to install
            if output_dir is None:
                fail("--engine ray writes one shard per input file: pass --output_dir FOLDER")
            if text or output is not None or any(str(path) == "-" for path in inputs or []):
                fail("--engine ray tags files into --output_dir; --text, --output and '-' (stdin) are for --engine local")
            if not inputs:
                fail("nothing to tag: give input files, folders or a quoted glob")
            shards = ShardConfig(output_dir, output_format or "parquet", input_format, text_field, task_name)  # type: ignore[arg-type]
            config = RayConfig(address=ray_address, num_workers=num_workers, threads=threads, device=device,
                               backend=backend, allow_pickle=allow_pickle, max_chars=max_chars)
            predict = PredictConfig(aggregation=aggregation, precision=precision, decoding=decoding,  # type: ignore[arg-type]
                                    batch_size=batch_size, min_score=min_score, review=review)
            _predict_ray(model, inputs, shards, config, predict, quiet)
            return
        for name, value in (("--output_dir", output_dir), ("--ray_address", ray_address), ("--num_workers", num_workers)):
            if value is not None:
                fail(f"{name} is for --engine ray; pass --engine ray (or --output FILE for one output file)")
        output_format = output_format or "jsonl"
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


def _predict_ray(model: Path, inputs: list[Path], shards, config, predict, quiet: bool) -> None:
    """``--engine ray``: input files -> one shard each under ``shards.output_dir``; a summary line on stderr."""
    from tagtune.ray_predict import predict_files

    _quiet_transformers()
    s = predict_files(model, inputs, shards, config, predict, progress=not quiet)
    typer.echo(f"tagged {s.documents:,} documents ({s.words:,} words) into {s.shards - s.skipped} shards with "
               f"{s.workers} workers x {s.threads} threads: {s.documents_per_second:,.1f} docs/s, "
               f"{s.words_per_second:,.0f} words/s (Ray start {s.ray_start_seconds:.1f} s, model loads "
               f"{s.workers_ready_seconds:.1f} s, total {s.seconds:.1f} s); {s.skipped} complete shards skipped; "
               f"{s.errors} bad records -> {shards.output_dir / 'errors.jsonl'}", err=True)


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
    from tagtune.shards import paired_predictions

    return paired_predictions(tagger, documents, words=words, progress=progress)


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
