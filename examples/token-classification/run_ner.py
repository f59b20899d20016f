#!/usr/bin/env python
"""Fine-tune, evaluate and predict token classification with the transformers Trainer, via tagtune.

Accepts the flags of transformers' examples/pytorch/token-classification/run_ner.py verbatim (or one
JSON file of them), plus tagtune's (see `--help`). Unlike upstream it reads integer-id JSON with
labels.json, CoNLL and CoNLL-U files, windows long sentences instead of truncating them, and writes
one prediction per input word.

    python run_ner.py --model_name_or_path MODEL --train_file train.json --validation_file dev.json \
        --test_file test.json --output_dir out --do_train --do_eval --do_predict
"""

from tagtune.cli import run_guarded
from tagtune.flags import parse_trainer_args
from tagtune.train import run_trainer


def main(argv: list[str] | None = None) -> dict:
    config, training_args = parse_trainer_args(argv)
    return run_trainer(config, training_args)


def _mp_fn(index: int) -> None:
    """Entry point of ``xla_spawn.py`` on TPUs, as upstream's run_ner.py has it."""
    run_guarded(main)


if __name__ == "__main__":
    run_guarded(main)
