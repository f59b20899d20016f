"""``tagtune distill``: a smaller, faster student from a fine-tuned teacher; every flag of
``run_ner_no_trainer.py`` passes through (``--output_dir``, ``--train_file``, ``--max_train_seconds``, ...).

The teacher's saved settings (windows, decoding, task, CRF, and its data files when none is given)
become the defaults of that script's parser, so an explicit flag wins over them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def distill(
        ctx: typer.Context,
        teacher: Annotated[Path, typer.Argument(help="A fine-tuned model directory (the teacher).")],
        student_layers: Annotated[int | None, typer.Option(
            "--student_layers", help="Keep this many of the teacher's layers (default 3, evenly spaced, the last "
            "included).")] = None,
        keep_layers: Annotated[str | None, typer.Option(
            "--keep_layers", help="Which teacher layers to keep, 0-based: '1,3,5'.")] = None,
        student_model: Annotated[str | None, typer.Option(
            "--student_model", help="Train this (smaller) encoder instead of dropping teacher layers.")] = None,
        temperature: Annotated[float, typer.Option("--temperature", help="Softening of the KL term.")] = 2.0,
        soft_weight: Annotated[float, typer.Option(
            "--soft_weight", help="Weight of the teacher's KL term; 1 - it weighs the gold loss.")] = 0.5,
        unlabelled_file: Annotated[list[Path] | None, typer.Option(
            "--unlabelled_file", help="Raw text or words the teacher tags too (any format tagtune predict reads; "
            "repeatable).")] = None,
        unlabelled_format: Annotated[str, typer.Option(
            "--unlabelled_format", help="As tagtune predict's --input_format.")] = "auto",
        text_field: Annotated[str, typer.Option("--text_field", help="Field holding the text in JSON records.")] = "text",
        max_unlabelled_samples: Annotated[int | None, typer.Option(
            "--max_unlabelled_samples", help="Use only the first N unlabelled documents.")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Distil TEACHER into a student: --output_dir DIR and any run_ner_no_trainer.py flag may follow.

        With no data flag the teacher's own training, validation and test files are used (when they exist).
        """
        from tagtune.cli import fail
        from tagtune.distill import DistillConfig, distill, student_flag_values
        from tagtune.flags import parse_loop_args
        from tagtune.progress import set_quiet

        set_quiet(quiet)
        try:
            layers = tuple(int(x) for x in keep_layers.split(",")) if keep_layers else None
        except ValueError:
            fail(f"--keep_layers '{keep_layers}': expected layer numbers separated by commas, such as 1,3,5")
        settings = DistillConfig(
            teacher=teacher, student_layers=student_layers, keep_layers=layers, student_model=student_model,
            temperature=temperature, soft_weight=soft_weight, unlabelled_files=tuple(unlabelled_file or ()),
            unlabelled_format=unlabelled_format, text_field=text_field, max_unlabelled_samples=max_unlabelled_samples)
        given = {a.split("=")[0][2:] for a in ctx.args if a.startswith("--")}
        config = parse_loop_args(ctx.args, student_flag_values(settings, given))
        results = distill(config, settings)
        for key in ("eval_f1", "eval_overall_f1", "predict_f1", "predict_overall_f1", "eval_accuracy"):
            if key in results:
                typer.echo(f"{key}: {results[key]:.4f}")
        typer.echo(f"student saved in {config.loop.output_dir}")  # type: ignore[union-attr]
