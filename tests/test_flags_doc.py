"""docs/flags.md names every flag that the two example scripts' parsers accept.

The flag lists come from the parsers themselves: ``run_ner.py``'s ``HfArgumentParser`` over
``tagtune.flags.ARGUMENT_CLASSES`` (every ``TrainingArguments`` flag included) and
``run_ner_no_trainer.py``'s ``tagtune.flags.build_loop_parser()``. A flag someone adds to either parser
fails here until the page says what tagtune does with it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

FLAGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "flags.md"


def accepted_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``--name`` a parser accepts, in the ``--snake_case`` spelling (``run_ner.py`` also takes
    ``--kebab-case`` aliases of the same flags; the page names each flag once)."""
    flags = []
    for action in parser._actions:
        long = [option for option in action.option_strings if option.startswith("--")]
        flags += [option for option in long if "-" not in option[2:]] or long[:1]
    return flags


def documented_flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[A-Za-z][\w]*(?![\w-])", text))


def run_ner_parser() -> argparse.ArgumentParser:
    from transformers import HfArgumentParser

    from tagtune.flags import ARGUMENT_CLASSES

    return HfArgumentParser(ARGUMENT_CLASSES)


def no_trainer_parser() -> argparse.ArgumentParser:
    from tagtune.flags import build_loop_parser

    return build_loop_parser()


def test_accepted_flags_reads_every_spelling_once():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_steps", "--max-steps")
    parser.add_argument("--no_pin", dest="pin", action="store_false")
    parser.add_argument("--kebab-only")
    assert accepted_flags(parser) == ["--help", "--max_steps", "--no_pin", "--kebab-only"]


def test_documented_flags_match_whole_names():
    text = "`--fp16_full_eval` and --do_train, not --bf16 inside `--bf16-x`"
    assert documented_flags(text) == {"--fp16_full_eval", "--do_train", "--bf16"}
    assert "--fp16" not in documented_flags(text)


def section(script: str) -> str:
    """The page's introduction plus the section of ``script`` (``## `run_ner.py` ...``)."""
    text = FLAGS_DOC.read_text(encoding="utf-8")
    intro, rest = text.split("\n## ", 1)
    sections = {part.split("`", 2)[1]: part for part in rest.split("\n## ") if part.startswith("`")}
    assert set(sections) == {"run_ner.py", "run_ner_no_trainer.py"}, "docs/flags.md: one section per script"
    return intro + sections[script]


@pytest.mark.parametrize("script, parser", [("run_ner.py", run_ner_parser),
                                            ("run_ner_no_trainer.py", no_trainer_parser)])
def test_every_accepted_flag_is_in_its_section_of_docs_flags_md(script: str, parser) -> None:
    flags = accepted_flags(parser())
    assert len(flags) > (100 if script == "run_ner.py" else 50)  # real parsers, TrainingArguments included
    documented = documented_flags(section(script))
    missing = [flag for flag in flags if flag not in documented]
    assert not missing, f"{script} accepts {', '.join(missing)}; its section of docs/flags.md does not say"


@pytest.mark.parametrize("script", ["run_ner.py", "run_ner_no_trainer.py"])
def test_batching_flags_are_documented_for_both_scripts(script: str) -> None:
    for flag in ("--max_tokens_per_batch", "--group_by_length", "--train_sampling_strategy"):
        assert flag in documented_flags(section(script).split("\n## ", 1)[-1]), flag
