"""``tagtune train``: friendly names for the common options; every flag of the chosen engine's script passes through.

The friendly options become the defaults of that script's parser (:mod:`tagtune.flags`), so an explicit
flag (``--model_name_or_path``, ``--num_train_epochs``, ...) wins over them; the parser builds the run's
typed configs, the same as ``run_ner.py`` / ``run_ner_no_trainer.py`` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tagtune.defaults import packaged_model_dir, sample_data_files

ENGINES = ("trainer", "accelerate")


def friendly_defaults(extra: list[str], *, model: str | None, train: Path | None, validation: Path | None,
                      test: Path | None, output: Path, epochs: float | None, lr: float | None,
                      batch_size: int | None, engine: str = "trainer", quiet: bool = False) -> dict[str, Any]:
    """Parser defaults from the friendly options; with no data at all, the packaged model on the sample data."""
    given = {a.split("=")[0] for a in extra if a.startswith("--")}
    data_given = bool(given & {"--train_file", "--validation_file", "--test_file", "--dataset_name"})
    if not data_given and not (train or validation or test):
        sample = sample_data_files()
        train, validation, test = sample["train"], sample["validation"], sample["test"]
    values = {"model_name_or_path": model or str(packaged_model_dir()), "output_dir": str(output),
              "train_file": train, "validation_file": validation, "test_file": test,
              "num_train_epochs": epochs, "learning_rate": lr, "per_device_train_batch_size": batch_size}
    defaults = {name: str(value) if isinstance(value, Path) else value
                for name, value in values.items() if value is not None}
    if engine == "trainer":
        if quiet:
            defaults["disable_tqdm"] = True
        if not given & {"--do_train", "--do_eval", "--do_predict"}:  # train, and score what there is to score
            has = lambda name, flag: name in defaults or flag in given  # noqa: E731
            defaults["do_train"] = True
            defaults["do_eval"] = has("validation_file", "--validation_file") or "--dataset_name" in given
            defaults["do_predict"] = has("test_file", "--test_file") or "--dataset_name" in given
    return defaults


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def train(
        ctx: typer.Context,
        model: Annotated[str | None, typer.Option("--model", help="Model directory (default: the packaged MiniLM).")] = None,
        train: Annotated[Path | None, typer.Option("--train", help="Training data (default: the sample data).")] = None,
        validation: Annotated[Path | None, typer.Option("--validation", help="Validation data.")] = None,
        test: Annotated[Path | None, typer.Option("--test", help="Test data.")] = None,
        output: Annotated[Path, typer.Option("--output", "-o", help="Output directory.")] = Path("tagtune-model"),
        epochs: Annotated[float | None, typer.Option("--epochs", help="Training epochs.")] = None,
        lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", help="Batch size per device.")] = None,
        engine: Annotated[str, typer.Option("--engine", help="trainer (transformers Trainer) or accelerate (the bare loop).")] = "trainer",
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Fine-tune a model. Any flag of run_ner.py (--engine trainer) or run_ner_no_trainer.py (--engine
        accelerate) may follow, e.g. --max_seq_length 256.

        With no arguments: the packaged MiniLM on tagtune's sample data, into ./tagtune-model.
        """
        from tagtune.cli import fail
        from tagtune.progress import set_quiet

        set_quiet(quiet)
        if engine not in ENGINES:
            fail(f"--engine '{engine}' is not one of {', '.join(ENGINES)}")
        defaults = friendly_defaults(ctx.args, model=model, train=train, validation=validation, test=test,
                                     output=output, epochs=epochs, lr=lr, batch_size=batch_size, engine=engine,
                                     quiet=quiet)
        if engine == "accelerate":
            from tagtune.flags import parse_loop_args
            from tagtune.loop import run_loop
            from tagtune.loop_tools import release_accelerate_state

            config = parse_loop_args(ctx.args, defaults)
            try:
                results = run_loop(config)
            finally:
                release_accelerate_state()
            output_dir = config.loop.output_dir
        else:
            from tagtune.flags import parse_trainer_args
            from tagtune.train import run_trainer

            config, training_args = parse_trainer_args(ctx.args, defaults)
            results = run_trainer(config, training_args)
            output_dir = training_args.output_dir
        for key in ("eval_f1", "eval_overall_f1", "predict_f1", "predict_overall_f1", "eval_accuracy"):
            if key in results:
                typer.echo(f"{key}: {results[key]:.4f}")
        typer.echo(f"model saved in {output_dir}")
