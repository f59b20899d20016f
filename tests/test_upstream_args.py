"""Upstream flags as upstream users type them: case, bare booleans, --verbose, the best-model metric."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import REPO


def trainer_args(*extra: str):
    from tagtune.flags import parse_trainer_args

    return parse_trainer_args(["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "out", *extra])


def loop_args(*extra: str):
    from tagtune.flags import parse_loop_args

    return parse_loop_args(["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "out", *extra])


def test_task_name_in_any_case() -> None:
    assert trainer_args("--task_name", "NER")[0].data.task_name == "ner"
    assert loop_args("--task_name", "Pos").data.task_name == "pos"


def test_verbose_is_accepted_by_both_scripts() -> None:
    parsed = trainer_args("--verbose")
    assert len(parsed) == 2  # the configs and the TrainingArguments, not an extra namespace
    assert loop_args("--verbose").loop.output_dir.name == "out"


def test_best_model_without_a_metric_uses_f1() -> None:
    training = trainer_args("--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy", "epoch")[1]
    assert training.metric_for_best_model == "f1" and training.greater_is_better is True
    named = trainer_args("--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy", "epoch",
                         "--metric_for_best_model", "accuracy")[1]
    assert named.metric_for_best_model == "accuracy"


@pytest.mark.parametrize("parse", [trainer_args, loop_args])
def test_batching_flags_resolve_the_same_in_both_scripts(parse) -> None:
    def budget_and_order(*extra):
        parsed = parse("--per_device_train_batch_size", "32", *extra)
        config = parsed[1] if isinstance(parsed, tuple) else parsed.loop
        return config.max_tokens_per_batch, config.train_sampling_strategy

    assert budget_and_order() == (320, "random")
    assert budget_and_order("--group_by_length") == (0, "group_by_length")
    assert budget_and_order("--group_by_length", "false") == (0, "random")
    assert budget_and_order("--max_tokens_per_batch", "0") == (0, "random")
    assert budget_and_order("--max_tokens_per_batch", "500") == (500, "random")


def test_run_ner_has_the_tpu_entry_point() -> None:
    spec = importlib.util.spec_from_file_location("run_ner_example", REPO / "examples" / "token-classification" / "run_ner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module._mp_fn)


def test_bf16_just_works_on_a_machine_without_a_gpu() -> None:
    """transformers refuses --bf16 without a GPU unless --use_cpu is added; with no GPU there is nothing else
    to train on. No memory is pinned either (torch warns about it on every loader without an accelerator)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: --bf16 trains there")
    training = trainer_args("--bf16")[1]
    assert training.bf16 and training.use_cpu and not training.dataloader_pin_memory
    assert not trainer_args()[1].use_cpu  # nothing changes without --bf16 (the Trainer picks the CPU itself)
