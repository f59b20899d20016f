"""``tagtune evaluate``: score a saved model on labelled data, word by word."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        model: Annotated[Path, typer.Argument(help="A model directory written by tagtune train.")],
        data: Annotated[Path, typer.Argument(help="Labelled data: CoNLL, CoNLL-U, JSON(L) or CSV.")],
        output_dir: Annotated[Path | None, typer.Option("--output_dir", "-o", help="Write eval_results.json and predictions.txt here.")] = None,
        task_name: Annotated[str, typer.Option("--task_name", help="ner, pos or chunk.")] = "ner",
        label_names_file: Annotated[Path | None, typer.Option("--label_names_file", help="JSON naming integer ids.")] = None,
        decoding: Annotated[str | None, typer.Option("--decoding", help="viterbi or argmax (default: the model's).")] = None,
        batch_size: Annotated[int, typer.Option("--batch_size", min=1, help="Windows per forward pass.")] = 32,
        entity_level: Annotated[bool, typer.Option("--return_entity_level_metrics", help="Metrics per entity type.")] = False,
        allow_pickle: Annotated[bool, typer.Option("--allow_pickle", help="Accept pickled weights (unsafe).")] = False,
        strict_labels: Annotated[bool, typer.Option("--strict_labels", help="Refuse invalid IOB sequences instead of repairing them.")] = False,
        overwrite_output_dir: Annotated[bool, typer.Option("--overwrite_output_dir", help="Replace earlier results in --output_dir.")] = False,
        calibrate: Annotated[bool, typer.Option("--calibrate", help="Fit a temperature for entity scores on DATA (a validation split) and save it as MODEL/calibration.json; reports the expected calibration error before and after.")] = False,
        calibrate_per_label: Annotated[bool, typer.Option("--calibrate_per_label", help="With --calibrate: one temperature per label.")] = False,
        calibrate_objective: Annotated[str, typer.Option("--calibrate_objective", help="With --calibrate: entity (log-loss of entity scores, default) or word (likelihood of every word's gold label).")] = "entity",
        audit: Annotated[bool, typer.Option("--audit", help="Label audit of DATA (needs cleanlab): the spans whose gold labels the model most confidently contradicts, in report.html and --output_dir/suspects.jsonl.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", help="Show tracebacks.")] = False,
    ) -> None:
        """Evaluate MODEL on DATA: entity P/R/F1 (seqeval-equal), per type, token accuracy; with --calibrate
        or --output_dir also the calibration of entity scores and precision/recall against a minimum score."""
        import json

        from tagtune.align import warn_long_words
        from tagtune.checkpoint import load_checkpoint
        from tagtune.cli import fail
        from tagtune.config import DataConfig
        from tagtune.evaluate import evaluate_examples, write_predictions
        from tagtune.fileio import atomic_write_json
        from tagtune.metrics import flatten_metrics
        from tagtune.progress import set_quiet
        from tagtune.readers import require_tags
        from tagtune.run import prepare_data

        set_quiet(quiet)
        if decoding not in (None, "viterbi", "argmax"):
            fail(f"--decoding '{decoding}' is not one of viterbi, argmax")
        if task_name not in ("ner", "pos", "chunk"):
            fail(f"--task_name '{task_name}' is not one of ner, pos, chunk")
        if calibrate_objective not in ("entity", "word"):
            fail(f"--calibrate_objective '{calibrate_objective}' is not one of entity, word")
        if (calibrate_per_label or calibrate_objective != "entity") and not calibrate:
            fail("--calibrate_per_label and --calibrate_objective set how --calibrate fits; pass --calibrate too")
        if audit:
            from tagtune.audit import require_cleanlab

            require_cleanlab()  # before the model runs: one line, no wasted minutes
        if output_dir is not None:
            if output_dir.exists() and not output_dir.is_dir():
                fail(f"--output_dir '{output_dir}' exists and is not a directory")
            earlier = [name for name in ("eval_results.json", "predictions.txt", "suspects.jsonl")
                       if (output_dir / name).exists()]
            if earlier and not overwrite_output_dir:
                fail(f"--output_dir '{output_dir}' already holds {' and '.join(earlier)}; pass --overwrite_output_dir "
                     "to replace them")
        checkpoint = load_checkpoint(model, allow_pickle=allow_pickle)
        data_cfg = DataConfig(test_file=data, task_name=task_name, label_names_file=label_names_file)  # type: ignore[arg-type]
        prepared = prepare_data(data_cfg, strict=strict_labels)
        examples = prepared.corpus.splits["test"]
        if all(e.tags is None for e in examples):
            fail(f"{data}: has no tag column to evaluate against; use tagtune predict for unlabelled data")
        require_tags(examples, "test", "tagtune evaluate", data_cfg)  # some sentences without tags
        unknown = sorted(set(prepared.labels) - set(checkpoint.labels))
        if unknown:
            typer.echo(f"warning: tags {unknown} are not among the model's labels; they count as missed", err=True)
        decoder = checkpoint.decoder(decoding)  # type: ignore[arg-type]  # a CRF model's transitions included
        aligner = checkpoint.aligner()
        result = evaluate_examples(checkpoint.forward(), aligner, examples, decoder, batch_size=batch_size)
        warn_long_words(data.name, result.long_words, result.first_long_word, aligner.word_cap)
        metrics = flatten_metrics(result.metrics, entity_level, prefix="eval_")
        metrics["eval_samples"], metrics["eval_words"] = len(examples), result.num_words
        metrics["eval_windowed_sentences"] = result.windowed_examples
        metrics["eval_long_words"] = result.long_words
        scores = suspects = None
        if calibrate or audit or output_dir is not None:
            scored: dict[int, tuple] = {}
            keep = (lambda index, tags, word_scores: scored.__setitem__(index, (tags, word_scores))) if audit else None
            scores, calibration = _entity_scores(checkpoint, aligner, decoder, examples, batch_size, model, data,
                                                 calibrate, calibrate_per_label, calibrate_objective, keep)
            metrics.update(_calibration_metrics(scores))
            if audit:
                suspects = _audit(checkpoint, examples, scored, calibration, data, prepared.corpus.format)
                metrics["eval_likely_annotation_errors"] = len(suspects.suspects)
        if output_dir is not None:
            atomic_write_json(output_dir / "eval_results.json", metrics)
            write_predictions(output_dir / "predictions.txt", examples, result.predictions)
            if suspects is not None:
                from tagtune.audit import write_suspects

                write_suspects(output_dir / "suspects.jsonl", suspects)
            from tagtune.outputs import load_run_config
            from tagtune.report import load_log_history, write_report

            report = write_report(output_dir, examples, result.predictions, result.metrics, load_log_history(model),
                                  load_run_config(model), split=data.name, title=f"{model.name} on {data.name}",
                                  scores=scores, suspects=suspects.suspects if suspects is not None else None)
            typer.echo(f"report: {report}", err=True)
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


def _entity_scores(checkpoint, aligner, decoder, examples, batch_size: int, model: Path, data: Path, calibrate: bool,
                   per_label: bool, objective: str, on_example=None) -> tuple[dict, object]:
    """The calibration summary of entity scores on DATA (``EntityScores.summary``) and the calibration
    in use; with ``calibrate``, fitted on DATA first and saved into MODEL."""
    from tagtune.calibration import collect_entity_scores, save_calibration

    collected = collect_entity_scores(checkpoint.forward(), aligner, examples, decoder, checkpoint.scheme,
                                      keep_words=objective == "word", batch_size=batch_size, on_example=on_example)
    calibration = checkpoint.calibration
    if calibrate:
        calibration = collected.fit(per_label=per_label, objective=objective, data=data.name)  # type: ignore[arg-type]
        path = save_calibration(model, calibration)
        typer.echo(f"calibration: temperature {calibration.temperature:.3f}, entity ECE "
                   f"{calibration.fitted_on['ece_before']:.4f} -> {calibration.fitted_on['ece_after']:.4f} on "
                   f"{data.name} -> {path}", err=True)
    return collected.summary(calibration), calibration


def _audit(checkpoint, examples, scored: dict, calibration, data: Path, fmt: str):
    """The label audit of DATA from the scoring pass's tags and word scores."""
    from tagtune.audit import audit_scored

    predicted = [scored[i][0] for i in range(len(examples))]
    log_probs = [scored[i][1] for i in range(len(examples))]
    found = audit_scored(examples, predicted, log_probs, checkpoint.labels, checkpoint.scheme, calibration=calibration,
                         split=data.name, file=str(data), fmt=fmt)
    typer.echo(f"audit: {len(found.suspects)} likely annotation error(s) in {found.sentences} sentences"
               + (f", {found.skipped} not audited (unknown tags)" if found.skipped else ""), err=True)
    return found


def _calibration_metrics(summary: dict) -> dict[str, float]:
    """``eval_entity_ece_before`` (raw scores), ``eval_entity_ece_after`` and ``eval_temperature`` (with a
    calibration)."""
    metrics = {"eval_entity_ece_before": summary["before"]["ece"]}
    if "after" in summary:
        metrics["eval_entity_ece_after"] = summary["after"]["ece"]
        metrics["eval_temperature"] = summary["temperature"]
    return metrics
