"""``tagtune serve``: an HTTP service (FastAPI + uvicorn) around one model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        model: Annotated[Path, typer.Argument(help="A model directory, or a folder written by tagtune export.")],
        host: Annotated[str, typer.Option("--host", help="Interface to bind (loopback by default).")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
        backend: Annotated[str, typer.Option("--backend", help="auto, torch or onnx.")] = "auto",
        precision: Annotated[str, typer.Option("--precision", help="auto (int8 on CPUs with VNNI, bf16 on GPUs), fp32, bf16 or int8 (torch).")] = "auto",
        aggregation: Annotated[str, typer.Option("--aggregation", help="first, average, max or simple.")] = "first",
        batch_size: Annotated[int | None, typer.Option("--batch_size", help="Windows per forward pass.")] = None,
        threads: Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")] = None,
        min_score: Annotated[float | None, typer.Option("--min_score", min=0.0, max=1.0, help="Drop entities scored below this (calibrated when the model has calibration.json); pick it from report.html's precision/recall table.")] = None,
        review: Annotated[bool, typer.Option("--review", help="Keep the entities below --min_score, marked \"review\": true, instead of dropping them.")] = False,
        max_body_bytes: Annotated[int, typer.Option("--max_body_bytes", help="Largest request body.")] = 1_000_000,
        max_texts: Annotated[int, typer.Option("--max_texts", help="Most texts per request.")] = 64,
        max_chars: Annotated[int, typer.Option("--max_chars", help="Most characters per text.")] = 100_000,
        max_batch_texts: Annotated[int, typer.Option("--max_batch_texts", help="Most texts per micro-batch.")] = 128,
        max_concurrent: Annotated[int, typer.Option("--max_concurrent", help="Most requests handled at once (503 beyond).")] = 64,
        max_wait_ms: Annotated[float, typer.Option("--max_wait_ms", help="Wait this long to gather a batch (0: none).")] = 0.0,
        api_key_env: Annotated[str, typer.Option("--api_key_env", help="Environment variable holding the API key "
                                                 "(the key is never a command-line argument).")] = "TAGTUNE_API_KEY",
        device: Annotated[str, typer.Option("--device", help="cpu or cuda[:n] (torch backend).")] = "cpu",
        log_level: Annotated[str, typer.Option("--log_level", help="uvicorn log level.")] = "info",
        allow_pickle: Annotated[bool, typer.Option("--allow_pickle", help="Accept pickled weights (unsafe).")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Serve MODEL over HTTP: POST /predict, GET /health, GET /metadata, docs at /docs."""
        from transformers.utils import logging as hf_logging

        from tagtune.predict import load
        from tagtune.serve import ServeConfig, api_key_from_env
        from tagtune.serve import serve as run_service

        config = ServeConfig(host=host, port=port, max_body_bytes=max_body_bytes, max_texts=max_texts,
                             max_chars=max_chars, max_batch_texts=max_batch_texts, max_wait_ms=max_wait_ms,
                             max_concurrent=max_concurrent,
                             api_key=api_key_from_env(api_key_env))
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        tagger = load(model, backend=backend, device=device, allow_pickle=allow_pickle,  # type: ignore[arg-type]
                      aggregation=aggregation, precision=precision, batch_size=batch_size, threads=threads,
                      min_score=min_score, review=review)
        run_service(tagger, config, log_level=log_level)
