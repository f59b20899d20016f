"""The bare Accelerate loop: distributed evaluation, exact resumption after SIGKILL, bf16 on CPU,
gradient accumulation, the upstream flags and the ``tagtune train --engine accelerate`` path.

Tiny BERT from conftest, tiny synthetic NER data written here (learnable in a few epochs: the tag of
a word depends on the word), everything offline. Runs that must match bit for bit, or that need
several processes or a SIGKILL, run in subprocesses with one thread each.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from conftest import REPO

SCRIPT = REPO / "examples" / "token-classification" / "run_ner_no_trainer.py"

PER = [["john", "smith"], ["mary", "jones"], ["angela", "merkel"], ["peter", "blackburn"]]
LOC = [["paris"], ["london"], ["berlin"], ["tokyo"], ["new", "york", "city"], ["brussels"]]
ORG = [["reuters"], ["eu"], ["bank"], ["football", "club"]]
FILLER = "the a of to in and is was for on with as by at from said will has week year".split()


def _sentence(rng: random.Random, long: bool) -> dict:
    pairs: list[tuple[str, str]] = []
    for _ in range(rng.randint(6, 9) if long else rng.randint(1, 3)):
        kind, names = rng.choice([("PER", PER), ("LOC", LOC), ("ORG", ORG)])
        pairs += [(w, "O") for w in rng.sample(FILLER, rng.randint(1, 3))]
        pairs += [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(rng.choice(names))]
    pairs += [(w, "O") for w in rng.sample(FILLER, rng.randint(0, 2))]
    return {"tokens": [w for w, _ in pairs], "ner_tags": [t for _, t in pairs]}


def write_split(path: Path, sentences: int, seed: int, long_every: int) -> int:
    """JSON lines as upstream reads them; every ``long_every``-th sentence needs several windows at
    ``--max_length 24``. Returns the number of words."""
    rng = random.Random(seed)
    records = [_sentence(rng, long=i % long_every == 0) for i in range(sentences)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return sum(len(r["tokens"]) for r in records)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("loop-data")
    # 21 validation sentences: with 2 processes x 4 per batch the last batch is padded with copies.
    words = {"train": write_split(root / "train.json", 40, 1, 10),
             "validation": write_split(root / "dev.json", 21, 2, 5),
             "test": write_split(root / "test.json", 9, 3, 4)}
    return {"dir": root, "words": words}


@pytest.fixture(scope="module")
def bert_no_dropout(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT without dropout: 1 and 2 processes then differ only by loss normalisation."""
    path = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    shutil.copytree(tiny_bert_dir, path, dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def flags(model: Path, data: dict, output: Path, *extra: str, batching: tuple[str, ...] = ("--group_by_length",)) -> list[str]:
    """The loop's flags on the test data. ``batching``: these tests count sentence-count batches (length-grouped,
    as the loop batched before token budgets became the default); the token-budget default has its own tests."""
    d = data["dir"]
    return ["--model_name_or_path", str(model), "--train_file", str(d / "train.json"),
            "--validation_file", str(d / "dev.json"), "--test_file", str(d / "test.json"),
            "--output_dir", str(output), "--max_length", "24", "--per_device_eval_batch_size", "4",
            "--learning_rate", "5e-3", "--seed", "3", *batching, *extra]


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", HF_HOME=str(tmp_path / "hf-home"))  # no user accelerate config
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def run(cmd: list[str], tmp_path: Path, expect: int = 0, timeout: int = 240) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == expect, f"exit {done.returncode}\n{done.stderr[-4000:]}"
    return done


def results(output: Path, name: str = "all_results.json") -> dict:
    return json.loads((output / name).read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_and_count_every_word_once(bert_no_dropout, data, tmp_path):
    """2 CPU processes (gloo) vs 1 process, same global batch (2 x 2 vs 4), data and seed.

    Tolerance: eval/predict F1 and accuracy within 0.03 (two entity decisions of 72), train loss within
    2% relative. Without dropout the runs differ only in how the loss is normalised (DDP averages
    per-process token means) and float summation order; observed: equal metrics, loss 0.1% apart.
    The distributed evaluation itself must be exact: re-scoring the saved model in one process with
    tagtune's streaming evaluator gives the same numbers, and every word is counted once.
    """
    one, two = tmp_path / "one", tmp_path / "two"
    common = ("--num_train_epochs", "3")
    run([sys.executable, str(SCRIPT), *flags(bert_no_dropout, data, one, *common,
                                             "--per_device_train_batch_size", "4")], tmp_path)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    launched = run([*launch, str(SCRIPT), *flags(bert_no_dropout, data, two, *common, "--cpu",
                                                 "--per_device_train_batch_size", "2")], tmp_path)
    assert "2 process(es) on cpu" in launched.stderr

    a, b = results(one), results(two)
    assert b["train_steps"] == a["train_steps"] == 3 * 11  # 44 windows / global batch 4, 3 epochs
    for key in ("eval_f1", "eval_accuracy", "predict_f1", "predict_accuracy"):
        assert abs(a[key] - b[key]) <= 0.03, (key, a[key], b[key])
    assert b["eval_f1"] > 0.6  # learned something: the comparison is not between two random models
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.02)
    for split, prefix in (("validation", "eval"), ("test", "predict")):
        assert a[f"{prefix}_words"] == b[f"{prefix}_words"] == data["words"][split]
    predicted = [line for line in (two / "predictions.txt").read_text().splitlines() if line]
    assert len(predicted) == data["words"]["test"]

    # The 2-process evaluation equals a plain single-process evaluation of the same weights.
    from tagtune.checkpoint import load_checkpoint
    from tagtune.corpus import Example
    from tagtune.decode import Decoder
    from tagtune.evaluate import evaluate_examples
    from tagtune.inference import model_forward
    from tagtune.metrics import flatten_metrics

    saved = load_checkpoint(two)
    records = [json.loads(line) for line in (data["dir"] / "dev.json").read_text().splitlines()]
    examples = [Example(tuple(r["tokens"]), tuple(r["ner_tags"])) for r in records]
    label2id = {label: i for i, label in enumerate(saved.labels)}
    from tagtune.align import Aligner

    check = evaluate_examples(model_forward(saved.model), Aligner(saved.tokenizer, saved.align, label2id), examples,
                              Decoder(saved.labels, saved.scheme), batch_size=7)
    assert check.num_words == b["eval_words"]
    expected = flatten_metrics(check.metrics, prefix="eval_")
    assert {k: b[k] for k in expected} == pytest.approx(expected, abs=1e-12)


KILLER = """
import os, signal, sys
import accelerate
from tagtune.loop import main

save_state = accelerate.Accelerator.save_state

def killing_save_state(self, output_dir=None, **kwargs):
    saved = save_state(self, output_dir, **kwargs)
    if os.path.basename(str(output_dir)) == ".tmp-" + os.environ["KILL_AT"]:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-save: the checkpoint is not complete yet
    return saved

accelerate.Accelerator.save_state = killing_save_state
main(sys.argv[1:])
"""


def test_sigkill_then_resume_latest_continues_exactly(tiny_bert_dir, data, tmp_path):
    """Killed while writing step_9 (mid epoch 0), resumed from 'latest' = step_6: the same weights,
    loss and metrics as an uninterrupted run. Tolerance: 1e-6 on loss and weights, metrics equal;
    observed bit-identical (dropout on: RNG states, batch order and position are all restored)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    extra = ("--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--checkpointing_steps", "3")
    run([sys.executable, str(SCRIPT), *flags(tiny_bert_dir, data, straight, *extra)], tmp_path)
    env_kill = [sys.executable, "-c", KILLER, *flags(tiny_bert_dir, data, killed, *extra)]
    done = subprocess.run(env_kill, env={**subprocess_env(tmp_path), "KILL_AT": "step_9"},
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == -9, done.stderr[-3000:]
    assert (killed / ".tmp-step_9").is_dir() and not (killed / "step_9").exists()
    assert not (killed / "all_results.json").exists()
    position = json.loads((killed / "step_6" / "loop_state.json").read_text())
    assert (position["epoch"], position["batch"]) == (0, 6)  # 11 batches per epoch: mid-epoch

    resumed = run([sys.executable, str(SCRIPT), *flags(tiny_bert_dir, data, killed, *extra),
                   "--resume_from_checkpoint", "latest"], tmp_path)
    assert "resuming from" in resumed.stderr and "step_6" in resumed.stderr
    a, b = results(straight), results(killed)
    assert a["train_steps"] == b["train_steps"] == 22
    assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-6)
    timing = ("train_runtime", "train_samples_per_second", "train_real_tokens_per_second")
    assert {k: v for k, v in b.items() if k not in timing} == \
        pytest.approx({k: v for k, v in a.items() if k not in timing}, abs=1e-6)
    from safetensors.torch import load_file

    wa, wb = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6
    assert not (killed / ".tmp-step_9").exists()  # cleaned when step_9 was saved again
    assert sorted(p.name for p in killed.glob("step_*")) == sorted(p.name for p in straight.glob("step_*"))


@contextmanager
def one_thread_fresh_accelerate() -> Iterator[None]:
    """Run the loop in this process with one thread (and restore the thread count).

    Accelerate keeps one process-wide state: a Trainer test that ran earlier in this process fixed its
    mixed precision, so it is reset before and after, as a fresh ``python run_ner_no_trainer.py`` has it.
    """
    from accelerate.state import AcceleratorState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        yield
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        torch.set_num_threads(threads)


@pytest.fixture
def in_process():
    with one_thread_fresh_accelerate():
        yield


def test_bf16_on_cpu(tiny_bert_dir, data, tmp_path, in_process):
    from tagtune.loop import main

    out = tmp_path / "bf16"
    found = main(flags(tiny_bert_dir, data, out, "--mixed_precision", "bf16", "--num_train_epochs", "1",
                       "--per_device_train_batch_size", "8", "--with_tracking", "--report_to", "tensorboard"))
    assert found["train_steps"] == 6 and 0 < found["train_loss"] < 10
    assert found["eval_words"] == data["words"]["validation"]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and set(config["id2label"].values()) >= {"B-PER", "I-LOC", "B-ORG"}
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert "bf16: True" in (out / "README.md").read_text()
    assert {"predictions.txt", "predict_results.json", "eval_results.json", "tagtune_config.json",
            "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert list(out.rglob("events.out.tfevents.*")), "tensorboard logs"


@pytest.mark.parametrize("extra, steps", [
    (("--num_train_epochs", "2"), 2 * 4),  # 11 batches per epoch -> ceil(11 / 3) = 4 steps per epoch
    (("--max_train_steps", "5"), 5),
])
def test_gradient_accumulation_counts_optimizer_steps(tiny_bert_dir, data, tmp_path, in_process, monkeypatch,
                                                      extra, steps):
    from tagtune.loop import main

    calls = []
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    found = main(flags(tiny_bert_dir, data, tmp_path / "accumulate", "--per_device_train_batch_size", "4",
                       "--gradient_accumulation_steps", "3", "--num_warmup_steps", "0", *extra))
    assert len(calls) == found["train_steps"] == steps


def test_upstream_flags_parse_and_bad_ones_are_refused(tmp_path):
    from tagtune.errors import ConfigError
    from tagtune.flags import parse_loop_args

    args = parse_loop_args([
        "--model_name_or_path", "m", "--train_file", "t.json", "--validation_file", "v.json", "--output_dir", "o",
        "--text_column_name", "words", "--label_column_name", "tags", "--task_name", "pos", "--max_length", "64",
        "--pad_to_max_length", "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32",
        "--learning_rate", "3e-5", "--weight_decay", "0.01", "--num_train_epochs", "2", "--gradient_accumulation_steps",
        "2", "--lr_scheduler_type", "cosine", "--num_warmup_steps", "10", "--seed", "7", "--label_all_tokens",
        "--return_entity_level_metrics", "--debug", "--checkpointing_steps", "epoch", "--resume_from_checkpoint",
        "latest", "--with_tracking", "--report_to", "tensorboard", "--ignore_mismatched_sizes", "--trust_remote_code",
        "--config_name", "c", "--tokenizer_name", "tok", "--dataset_config_name", "x", "--model_type", "bert",
    ])
    assert args.data.task_name == "pos" and args.data.max_train_samples == 100  # --debug
    assert args.align.max_length == 64 and args.align.pad_to_max_length and args.align.label_all_tokens
    assert args.loop.checkpointing_steps == "epoch" and args.loop.lr_scheduler_type == "cosine"
    assert args.eval.return_entity_level_metrics and args.model.ignore_mismatched_sizes
    for bad, message in ((["--checkpointing_steps", "often"], "--checkpointing_steps 'often'"),
                         (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be")):
        with pytest.raises(ConfigError, match=message):
            parse_loop_args(["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o", *bad])


def test_resume_latest_without_checkpoint_and_other_batch_size_are_refused(tiny_bert_dir, data, tmp_path,
                                                                          in_process):
    from tagtune.errors import ConfigError, OutputDirError
    from tagtune.loop import main

    out = tmp_path / "out"
    with pytest.raises(OutputDirError, match="no complete step_N or epoch_N checkpoint"):
        main(flags(tiny_bert_dir, data, out, "--resume_from_checkpoint", "latest"))
    main(flags(tiny_bert_dir, data, out, "--max_train_steps", "2", "--checkpointing_steps", "2",
               "--per_device_train_batch_size", "8"))
    with pytest.raises(OutputDirError, match="already exists and is not empty"):
        main(flags(tiny_bert_dir, data, out, "--max_train_steps", "2"))
    with pytest.raises(ConfigError, match="per_device_train_batch_size=8 but this run has 4"):
        main(flags(tiny_bert_dir, data, out, "--max_train_steps", "3", "--per_device_train_batch_size", "4",
                   "--resume_from_checkpoint", str(out / "step_2")))


def test_cli_train_engine_accelerate(tiny_bert_dir, data, tmp_path, in_process):
    from typer.testing import CliRunner

    from tagtune.cli import app

    d, out = data["dir"], tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "train", "--engine", "accelerate", "--model", str(tiny_bert_dir), "--train", str(d / "train.json"),
        "--validation", str(d / "dev.json"), "--output", str(out), "--epochs", "1", "--batch-size", "8",
        "--quiet", "--max_seq_length", "24", "--bf16", "true", "--max_steps", "3", "--seed", "1",
    ])
    assert result.exit_code == 0, result.output
    assert "eval_f1:" in result.output and str(out) in result.output
    assert results(out)["train_steps"] == 3


def test_launch_checks(monkeypatch, caplog):
    from types import SimpleNamespace

    from tagtune.errors import ConfigError
    from tagtune.loop_tools import check_launch as _check_launch

    one_cpu = SimpleNamespace(num_processes=1, is_main_process=True, mixed_precision="no", device=torch.device("cpu"))
    # `accelerate launch --cpu --num_processes 2` without mpirun: one process, MASTER_ADDR set.
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    with caplog.at_level("WARNING", logger="tagtune.loop"):
        _check_launch(one_cpu)
    assert "starts N processes only through mpirun" in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun started 2, Accelerate saw 1 each
    with pytest.raises(ConfigError, match="2 processes were launched but Accelerate runs them as 1-process jobs"):
        _check_launch(one_cpu)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match="fp16 needs a GPU; use --mixed_precision bf16 on CPU"):
        _check_launch(SimpleNamespace(**{**vars(one_cpu), "mixed_precision": "fp16"}))


def test_run_ner_spellings_mean_the_same_in_the_loop():
    """One flag table: the loop's parser takes run_ner.py's spellings as aliases of its own flags."""
    from tagtune.errors import ConfigError
    from tagtune.flags import parse_loop_args

    base = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o"]
    trainer_spelling = parse_loop_args([*base, "--max_seq_length", "64", "--bf16", "true", "--fp16", "false",
                                        "--max_steps=5", "--warmup_steps", "2", "--save_steps", "10", "--use_cpu",
                                        "--label_all_tokens", "--pad_to_max_length", "false", "--seed", "1"])
    loop_spelling = parse_loop_args([*base, "--max_length", "64", "--mixed_precision", "bf16", "--max_train_steps",
                                     "5", "--num_warmup_steps", "2", "--checkpointing_steps", "10", "--cpu",
                                     "--label_all_tokens", "--seed", "1"])
    assert trainer_spelling == loop_spelling
    assert trainer_spelling.align.max_length == 64 and not trainer_spelling.align.pad_to_max_length
    assert trainer_spelling.loop.mixed_precision == "bf16" and trainer_spelling.loop.checkpointing_steps == 10
    with pytest.raises(ConfigError, match="--fp16 contradicts --mixed_precision bf16"):
        parse_loop_args([*base, "--mixed_precision", "bf16", "--fp16"])


# --------------------------------------------------------------------------------------------------
# --crf: the CRF head of the Trainer engine, in the loop.


@pytest.fixture(scope="module")
def crf_model(tiny_bert_dir, data, tmp_path_factory) -> tuple[Path, dict, list[float]]:
    """A CRF model trained by the loop (2 epochs, 12 steps), its results and every CRF loss computed."""
    from tagtune.crf import CRF
    from tagtune.loop import main

    losses: list[float] = []
    original = CRF.loss

    def recording_loss(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        losses.append(loss.item())
        return loss

    out = tmp_path_factory.mktemp("loop-crf") / "model"
    patch = pytest.MonkeyPatch()
    patch.setattr(CRF, "loss", recording_loss)
    try:
        with one_thread_fresh_accelerate():
            found = main(flags(tiny_bert_dir, data, out, "--crf", "--num_train_epochs", "2",
                               "--per_device_train_batch_size", "8"))
    finally:
        patch.undo()
    return out, found, losses


def test_crf_trains_on_its_likelihood_and_saves_a_loadable_model(crf_model, data):
    import numpy as np
    from safetensors.torch import load_file

    import tagtune
    from tagtune.checkpoint import load_checkpoint
    from tagtune.crf import CRF_LR_SCALE, read_crf_file
    from tagtune.labels import validate_tags

    out, found, losses = crf_model
    # The loss is the CRF's negative log-likelihood: one CRF loss per training batch, and the reported
    # train loss is their mean (one process, no accumulation: a step is a batch).
    assert found["train_steps"] == 12 and len(losses) == 12
    assert found["train_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert losses[-1] < losses[0]
    assert found["eval_words"] == data["words"]["validation"]
    assert found["predict_words"] == data["words"]["test"]

    assert (out / "crf.safetensors").is_file() and (out / "model.safetensors").is_file()
    assert not any(k.startswith(("encoder.", "crf.")) for k in load_file(out / "model.safetensors"))
    saved = json.loads((out / "tagtune_config.json").read_text())
    assert saved["model"]["crf"] is True
    labels, scheme, transitions = read_crf_file(out)
    assert labels == saved["labels"] and scheme == saved["scheme"] == "IOB2"
    # The transitions start at zero and have their own learning rate, lr x CRF_LR_SCALE: at lr 5e-3 alone
    # 12 Adam steps of a decaying schedule move a parameter by well under 0.1.
    assert CRF_LR_SCALE * 5e-3 >= 0.1 and np.abs(transitions).max() > 0.1

    checkpoint = load_checkpoint(out)
    assert np.array_equal(checkpoint.transitions, transitions)
    tagger = tagtune.load(out)
    sentences = [["john", "smith", "visited", "new", "york", "city"], ["reuters"],
                 ["the", "eu", "said", "a", "week"]]
    predictions = list(tagger.predict_words(sentences))
    assert [len(p.tags) for p in predictions] == [len(s) for s in sentences]
    assert all(validate_tags(p.tags, scheme) == [] for p in predictions)


def test_crf_evaluation_and_prediction_decode_with_the_crf_transitions(crf_model, data, tmp_path, in_process):
    """A CRF model whose transitions into B-LOC outweigh any emission: the loop (continuing it at
    learning rate 0, so the transitions stay as set) must predict B-LOC for every word, which only the
    CRF's transitions can make it do; so must ``tagtune.load``."""
    import numpy as np
    from safetensors.torch import save_file

    import tagtune
    from tagtune.crf import CRF_FILE, read_crf_file
    from tagtune.loop import main

    trained, _, _ = crf_model
    start = tmp_path / "b-loc-crf"
    shutil.copytree(trained, start)
    labels, scheme, transitions = read_crf_file(trained)
    forced = np.zeros_like(transitions)
    forced[:, labels.index("B-LOC")] = 1000.0  # from every label and from the start
    save_file({"transitions": torch.from_numpy(forced)}, str(start / CRF_FILE),
              metadata={"format": "pt", "labels": json.dumps(labels), "scheme": scheme})

    out = tmp_path / "continued"
    found = main(flags(start, data, out, "--crf", "--max_train_steps", "1", "--learning_rate", "0",
                       "--per_device_train_batch_size", "8"))
    lines = (out / "predictions.txt").read_text().splitlines()
    predicted = [line.split()[-1] for line in lines if line.strip()]
    assert len(predicted) == data["words"]["test"] and set(predicted) == {"B-LOC"}
    assert found["eval_words"] == data["words"]["validation"] and found["eval_precision"] < 0.5
    _, _, kept = read_crf_file(out)
    assert np.array_equal(kept, forced)  # reused from the starting model, not learned (learning rate 0)
    tags = next(iter(tagtune.load(out).predict_words([["john", "smith", "said"]]))).tags
    assert tags == ["B-LOC"] * 3


def test_crf_checkpoints_resume_exactly(tiny_bert_dir, data, tmp_path, in_process):
    """A CRF run resumed from its step_2 checkpoint ends with the same weights, transitions and loss as
    the uninterrupted run; a checkpoint of a CRF run is not resumed without --crf."""
    import numpy as np
    from safetensors.torch import load_file

    from tagtune.crf import read_crf_file
    from tagtune.errors import ConfigError
    from tagtune.loop import main
    from tagtune.loop_tools import release_accelerate_state as _release_accelerate_state

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    extra = ("--crf", "--max_train_steps", "4", "--checkpointing_steps", "2",
             "--per_device_train_batch_size", "8")
    a = main(flags(tiny_bert_dir, data, straight, *extra))
    state = load_file(straight / "step_2" / "model.safetensors")
    assert "crf.transitions" in state and any(k.startswith("encoder.") for k in state)
    assert json.loads((straight / "step_2" / "loop_state.json").read_text())["crf"] is True

    resumed.mkdir()
    shutil.copytree(straight / "step_2", resumed / "step_2")
    with pytest.raises(ConfigError, match="was trained with --crf; resume with --crf"):
        main(flags(tiny_bert_dir, data, resumed, "--max_train_steps", "4",
                   "--per_device_train_batch_size", "8", "--resume_from_checkpoint", "latest"))
    _release_accelerate_state()  # the refused run stopped after creating its Accelerator
    b = main(flags(tiny_bert_dir, data, resumed, *extra, "--resume_from_checkpoint", "latest"))
    assert b["train_steps"] == a["train_steps"] == 4
    timing = ("train_runtime", "train_samples_per_second", "train_real_tokens_per_second")
    assert {k: v for k, v in b.items() if k not in timing} == \
        pytest.approx({k: v for k, v in a.items() if k not in timing}, abs=1e-6)
    assert np.abs(read_crf_file(straight)[2] - read_crf_file(resumed)[2]).max() <= 1e-6
    wa, wb = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-6


def test_crf_with_label_all_tokens_is_one_error_line(tiny_bert_dir, data, tmp_path, capsys):
    import logging

    from tagtune.cli import invoke, run_guarded
    from tagtune.loop import main

    expected = ("error: --crf scores words (first sub-tokens) and cannot be combined with "
                "--label_all_tokens; drop one of them")
    d = data["dir"]
    entry_points = [
        (main, flags(tiny_bert_dir, data, tmp_path / "script", "--crf", "--label_all_tokens")),
        (invoke, ["train", "--engine", "accelerate", "--model", str(tiny_bert_dir),
                  "--train", str(d / "train.json"), "--output", str(tmp_path / "cli"),
                  "--crf", "--label_all_tokens", "true"]),
    ]
    logger = logging.getLogger("tagtune")
    handlers = logger.handlers[:]
    try:
        for function, argv in entry_points:
            capsys.readouterr()
            with pytest.raises(SystemExit) as exit_:
                run_guarded(function, argv)
            captured = capsys.readouterr()
            assert exit_.value.code == 2
            assert captured.err.strip().splitlines() == [expected], captured.err
    finally:
        logger.handlers[:] = handlers
    assert not (tmp_path / "script").exists() and not (tmp_path / "cli").exists()  # refused before any work


# --------------------------------------------------------------------------------------------------
# --document_context and the report.


def test_document_context_flag_resolves_as_the_trainer_engine():
    from tagtune.errors import ConfigError
    from tagtune.flags import parse_loop_args

    base = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o", "--max_length", "64"]
    assert parse_loop_args(base).align.context_size == 0
    assert parse_loop_args([*base, "--context_size", "8"]).align.context_size == 8
    assert parse_loop_args([*base, "--document_context"]).align.context_size == 64  # the whole window
    assert parse_loop_args([*base, "--document_context", "--context_size", "100"]).align.context_size == 100
    assert not parse_loop_args(base).model.crf and parse_loop_args([*base, "--crf"]).model.crf
    with pytest.raises(ConfigError, match="--context_size -1 must be 0 or more"):
        parse_loop_args([*base, "--context_size", "-1"])
    assert parse_loop_args([*base, "--crf", "true", "--document_context", "false"]).model.crf


def test_document_context_is_saved_and_never_labelled(tiny_bert_dir, tmp_path, in_process, monkeypatch):
    from transformers import AutoTokenizer, DataCollatorForTokenClassification

    from tagtune.checkpoint import load_checkpoint
    from tagtune.loop import main

    rng = random.Random(5)
    records = [{**_sentence(rng, long=False), "doc": f"doc-{i // 4}"} for i in range(12)]  # 3 documents of 4
    train = tmp_path / "train.json"
    train.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    batches: list[dict] = []
    collate = DataCollatorForTokenClassification.__call__

    def recording_collate(self, features, *args, **kwargs):
        batch = collate(self, features, *args, **kwargs)
        batches.append({k: v.clone() for k, v in batch.items()})
        return batch

    monkeypatch.setattr(DataCollatorForTokenClassification, "__call__", recording_collate)
    out = tmp_path / "context"
    main(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train), "--output_dir", str(out),
          "--max_length", "64", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
          "--seed", "1", "--document_context"])

    saved = json.loads((out / "tagtune_config.json").read_text())
    assert saved["align"]["context_size"] == 64
    assert load_checkpoint(out).align.context_size == 64  # prediction adds the same context
    label2id = json.loads((out / "config.json").read_text())["label2id"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    expected = {}  # labelled (first sub-tokens, tags) of each sentence alone -> its sub-token count
    for record in records:
        encoded = tokenizer(record["tokens"], is_split_into_words=True, add_special_tokens=False)
        words = encoded.word_ids()
        firsts = [encoded["input_ids"][i] for i, w in enumerate(words) if i == 0 or words[i - 1] != w]
        expected[(tuple(firsts), tuple(label2id[t] for t in record["ner_tags"]))] = len(words)
    rows = 0
    for batch in batches:
        rows_of_batch = zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True)
        for ids, labels, mask in rows_of_batch:
            keep = labels != -100
            key = (tuple(ids[keep].tolist()), tuple(labels[keep].tolist()))
            assert key in expected, "a row's labelled positions are exactly one sentence's words"
            assert int(mask.sum()) > expected[key] + 2  # plus [CLS] [SEP] and unlabelled context
            rows += 1
    assert rows == len(records)


def test_report_of_the_test_split_with_learning_curves(crf_model):
    out, found, _ = crf_model
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and report["words"] == found["predict_words"]
    assert report["metrics"]["f1"] == pytest.approx(found["predict_f1"])
    assert report["config"]["model.crf"] is True and report["config"]["align.max_length"] == 24
    assert {"plots/per_type.png", "plots/confusion.png", "plots/learning_curves.png"} <= set(report["plots"])
    html = (out / "report.html").read_text()
    assert "Learning curves" in html
    assert "report.html" in (out / "README.md").read_text()  # the model card cites it


def test_training_from_scratch_with_config_name_and_a_bad_model_type(tiny_bert_dir, data, tmp_path, in_process):
    """Without --model_name_or_path: --config_name is the config a new model is built from (as upstream), and
    an unknown --model_type is one error line, not a traceback."""
    from tagtune.errors import ConfigError
    from tagtune.loop import main

    def scratch(out, *extra):
        d = data["dir"]
        return main(["--train_file", str(d / "train.json"), "--output_dir", str(out), "--tokenizer_name",
                     str(tiny_bert_dir), "--max_length", "24", "--max_train_steps", "2", "--seed", "3", *extra])

    config = json.loads((tiny_bert_dir / "config.json").read_text())
    config["num_hidden_layers"] = 1  # the tiny model has 2: the new one must follow the given config
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text(json.dumps(config))
    found = scratch(tmp_path / "from_config", "--config_name", str(tmp_path / "config"))
    assert found["train_steps"] == 2
    assert json.loads((tmp_path / "from_config" / "config.json").read_text())["num_hidden_layers"] == 1
    with pytest.raises(ConfigError, match="--model_type 'no-such-model'"):
        scratch(tmp_path / "bad", "--model_type", "no-such-model")


def test_the_trainer_engine_shards_evaluation_over_processes_and_writes_once(tiny_bert_dir, data, tmp_path):
    """run_ner.py under torchrun, 2 CPU processes: each word of the validation and test splits is predicted by
    one process and counted once, the scores equal a single-process evaluation of the saved model, and one
    process writes the result files (predictions.txt has one line per test word)."""
    d, out = data["dir"], tmp_path / "trainer2"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    done = run([*launch, str(REPO / "examples" / "token-classification" / "run_ner.py"), "--model_name_or_path",
         str(tiny_bert_dir), "--train_file", str(d / "train.json"), "--validation_file", str(d / "dev.json"),
         "--test_file", str(d / "test.json"), "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
         "--max_steps", "4", "--max_seq_length", "24", "--per_device_eval_batch_size", "3", "--use_cpu",
         "--report_to", "none", "--save_strategy", "no", "--seed", "3", "--disable_tqdm", "true"], tmp_path)
    assert "effective batch 160 padded sub-tokens" in done.stderr  # 2 processes x 80: one job, not two
    found = results(out)
    for split, prefix in (("validation", "eval"), ("test", "predict")):
        assert found[f"{prefix}_words"] == data["words"][split]
    predicted = [line for line in (out / "predictions.txt").read_text().splitlines() if line]
    assert len(predicted) == data["words"]["test"]

    from tagtune.align import Aligner
    from tagtune.checkpoint import load_checkpoint
    from tagtune.corpus import Example
    from tagtune.decode import Decoder
    from tagtune.evaluate import evaluate_examples
    from tagtune.inference import model_forward
    from tagtune.metrics import flatten_metrics

    saved = load_checkpoint(out)
    records = [json.loads(line) for line in (d / "dev.json").read_text().splitlines()]
    examples = [Example(tuple(r["tokens"]), tuple(r["ner_tags"])) for r in records]
    label2id = {label: i for i, label in enumerate(saved.labels)}
    check = evaluate_examples(model_forward(saved.model), Aligner(saved.tokenizer, saved.align, label2id), examples,
                              Decoder(saved.labels, saved.scheme), batch_size=5)
    expected = flatten_metrics(check.metrics, prefix="eval_")
    assert {k: found[k] for k in expected} == pytest.approx(expected, abs=1e-12)
