"""``tagtune export``: ONNX export with optional dynamic int8 quantization and a parity report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        model: Annotated[Path, typer.Argument(help="A fine-tuned model directory.")],
        format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
        quantize: Annotated[str | None, typer.Option("--quantize", help="int8 (dynamic, ONNX Runtime) or none.")] = None,
        output_dir: Annotated[Path | None, typer.Option("--output_dir", "-o", help="Where to write (default: MODEL/onnx).")] = None,
        opset: Annotated[int, typer.Option("--opset", help="ONNX opset.")] = 17,
        no_optimize: Annotated[bool, typer.Option("--no_optimize", help="Quantize without fusing attention/layer norm first.")] = False,
        allow_pickle: Annotated[bool, typer.Option("--allow_pickle", help="Accept pickled weights (unsafe).")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Export MODEL to ONNX (model.onnx, and model_int8.onnx with --quantize int8), checked against PyTorch."""
        import json

        from tagtune.cli import fail
        from tagtune.export import REPORT_FILE, ExportConfig, export_onnx

        if format != "onnx":
            fail(f"--format '{format}' is not supported; the only export format is onnx")
        quantization = None if quantize in (None, "none") else quantize
        target = output_dir or model / "onnx"
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        report = export_onnx(model, target, ExportConfig(quantize=quantization, opset=opset, optimize=not no_optimize),
                             allow_pickle=allow_pickle)
        typer.echo(json.dumps(report, indent=2))
        typer.echo(f"exported to {target} (report: {target / REPORT_FILE}); use it with: "
                   f"tagtune predict {target} ... or --backend onnx", err=True)
