"""``tagtune train``: friendly names for the common options; every run_ner.py flag passes through."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tagtune.defaults import packaged_model_dir, sample_data_files

ENGINES = ("trainer", "accelerate")


def build_argv(extra: list[str], *, model: str | None, train: Path | None, validation: Path | None,
               test: Path | None, output: Path, epochs: float | None, lr: float | None,
               batch_size: int | None) -> list[str]:
    """Upstream-style flags from the friendly options; defaults are the packaged model and sample data."""
    argv = list(extra)
    given = set(a.split("=")[0] for a in argv if a.startswith("--"))

    def add(flag: str, value: object) -> None:
        if value is not None and flag not in given:
            argv.extend([flag, str(value)])

    if "--model_name_or_path" not in given:
        add("--model_name_or_path", model or packaged_model_dir())
    data_given = given & {"--train_file", "--validation_file", "--test_file", "--dataset_name"}
    if not data_given and not (train or validation or test):
        sample = sample_data_files()
        train, validation, test = sample["train"], sample["validation"], sample["test"]
    add("--train_file", train)
    add("--validation_file", validation)
    add("--test_file", test)
    add("--output_dir", output)
    add("--num_train_epochs", epochs)
    add("--learning_rate", lr)
    add("--per_device_train_batch_size", batch_size)
    has = lambda flag: flag in given or flag in argv  # noqa: E731
    if not given & {"--do_train", "--do_eval", "--do_predict"}:
        argv.append("--do_train")
        if has("--validation_file") or has("--dataset_name"):
            argv.append("--do_eval")
        if has("--test_file") or has("--dataset_name"):
            argv.append("--do_predict")
    return argv


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
        """Fine-tune a model. Any run_ner.py / TrainingArguments flag may follow (e.g. --max_seq_length 256).

        With no arguments: the packaged MiniLM on tagtune's sample data, into ./tagtune-model.
        """
        from tagtune.cli import fail
        from tagtune.progress import set_quiet

        set_quiet(quiet)
        if engine not in ENGINES:
            fail(f"--engine '{engine}' is not one of {', '.join(ENGINES)}")
        argv = build_argv(ctx.args, model=model, train=train, validation=validation, test=test, output=output,
                          epochs=epochs, lr=lr, batch_size=batch_size)
        if quiet:
            argv += ["--disable_tqdm", "true"]
        if engine == "accelerate":
            from tagtune.loop import main as loop_main

            flags = _to_loop_flags(argv)
            results = loop_main(flags)
            for key in ("eval_f1", "predict_f1", "eval_overall_f1", "predict_overall_f1"):
                if key in results:
                    typer.echo(f"{key}: {results[key]:.4f}")
            output_dir = [flags[i + 1] for i, flag in enumerate(flags[:-1]) if flag == "--output_dir"][-1]
            typer.echo(f"model saved in {output_dir}")
            return
        from tagtune.train import run_trainer
        from tagtune.upstream_args import parse_upstream_args

        model_args, data_args, training_args = _parse(parse_upstream_args, argv)
        data_cfg, align_cfg, eval_cfg = data_args.to_configs(training_args.per_device_eval_batch_size)
        results = run_trainer(data_cfg, model_args.to_config(), align_cfg, eval_cfg, training_args,
                              strict_labels=data_args.strict_labels)
        for key in ("eval_f1", "eval_overall_f1", "predict_f1", "predict_overall_f1", "eval_accuracy"):
            if key in results:
                typer.echo(f"{key}: {results[key]:.4f}")
        typer.echo(f"model saved in {training_args.output_dir}")


def _parse(parser, argv: list[str]):
    from tagtune.errors import ConfigError

    try:
        return parser(argv)
    except SystemExit as exit_:  # argparse printed its usage and the reason already
        if exit_.code:
            raise ConfigError("invalid flags for tagtune train (see the message above)") from None
        raise


_LOOP_RENAMED = {"--max_seq_length": "--max_length", "--max_steps": "--max_train_steps",
                 "--warmup_steps": "--num_warmup_steps", "--save_steps": "--checkpointing_steps",
                 "--use_cpu": "--cpu"}
_LOOP_SWITCHES = {"--pad_to_max_length", "--label_all_tokens", "--return_entity_level_metrics", "--trust_remote_code",
                  "--ignore_mismatched_sizes", "--allow_pickle", "--strict_labels", "--overwrite_output_dir",
                  "--cpu", "--debug", "--with_tracking", "--crf", "--document_context", "--overwrite_cache", "--verbose"}
_TRAINER_ONLY = {"--do_train", "--do_eval", "--do_predict", "--disable_tqdm"}


def _to_loop_flags(argv: list[str]) -> list[str]:
    """run_ner.py / TrainingArguments spellings -> run_ner_no_trainer.py ones.

    Switches may carry a value as HfArgumentParser allows (``--bf16 true``); ``--bf16``/``--fp16`` become
    ``--mixed_precision``, ``--report_to X`` turns tracking on. Other flags pass unchanged.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag, value = argv[i], None
        if flag.startswith("--") and "=" in flag:
            flag, value = flag.split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            value = argv[i + 1]
            i += 1
        i += 1
        flag = _LOOP_RENAMED.get(flag, flag)
        is_bool = value is None or value.lower() in ("true", "false", "1", "0", "yes", "no")
        on = value is None or value.lower() in ("true", "1", "yes")
        if flag in _TRAINER_ONLY:
            continue
        if flag in ("--bf16", "--fp16") and is_bool:
            out += ["--mixed_precision", flag[2:]] if on else []
        elif flag in _LOOP_SWITCHES and is_bool:
            out += [flag] if on else []
        elif flag == "--report_to" and value is not None:
            out += [] if value == "none" else ["--with_tracking", "--report_to", value]
        else:
            out += [flag] if value is None else [flag, value]
    return out
