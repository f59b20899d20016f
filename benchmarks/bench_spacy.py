"""The CPU peer: spaCy 3.8's efficiency NER pipeline against tagtune, same CoNLL-2003 files, same wall time.

spaCy: the config of ``spacy init config --lang en --pipeline ner --optimize efficiency`` (CPU, no
vectors), trained with spaCy's own loop (``train_while_improving``: its batcher, dropout, optimizer,
evaluation on the validation file every 200 steps, best checkpoint kept) for ``--seconds`` of training
time; evaluation time is not counted against it, and its step and patience limits are lifted so that
it trains for the whole budget. The CoNLL files are converted here, not by ``spacy convert``: its
CoNLL-NER converter does not recognise CoNLL-2003's ``-DOCSTART- -X- -X- O`` lines and would train on
them as sentences; tagtune's reader takes them as document boundaries and they never become tokens.
One sentence per ``Doc``, as ``spacy convert`` does by default.

tagtune: ``run_ner.py`` with ``--max_train_seconds`` (learning rate decaying linearly with time),
batch 32, learning rate 5e-5, ``--max_seq_length 128``, on the same ``.txt`` files, for each
configuration of ``--tagtune-configs`` (see bench_accuracy.py; ``--tagtune-extra`` adds or overrides
flags); the best one on validation F1 is the one compared.

Both are scored with tagtune's seqeval-equal entity F1 on every word of test.txt, from the same
pre-tokenized words. Prediction speed is words per second over the whole test file, input preparation
(``Doc`` construction / sub-word tokenization) included, after a warm-up, torch on 2 threads.

    python benchmarks/bench_spacy.py --seconds 900 --out benchmarks/out/spacy       # the comparison
    python benchmarks/bench_spacy.py --seconds 30 --max_eval_samples 200 --max_predict_samples 200 \\
        --out benchmarks/out/spacy_smoke                                          # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import TAGTUNE_CONFIGS, score_decodings  # noqa: E402 - benchmarks/ is on sys.path only now
from bench_train import run_child  # noqa: E402

SPLIT_FILES = {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"}
SPACY_INIT = "spacy init config --lang en --pipeline ner --optimize efficiency (CPU, no vectors)"


def read_conll_splits(data: Path, max_eval: int | None = None, max_predict: int | None = None) -> dict[str, list]:
    """The three CoNLL splits as tagtune examples (IOB2 tags, ``-DOCSTART-`` as document boundaries)."""
    from tagtune.config import DataConfig
    from tagtune.run import prepare_data

    prepared = prepare_data(DataConfig(train_file=data / SPLIT_FILES["train"],
                                       validation_file=data / SPLIT_FILES["validation"],
                                       test_file=data / SPLIT_FILES["test"], max_eval_samples=max_eval,
                                       max_predict_samples=max_predict))
    return prepared.corpus.splits


def examples_to_docs(examples: Sequence, vocab, with_entities: bool = True) -> list:
    """One spaCy ``Doc`` per sentence, its entities from the IOB2 tags (none when ``with_entities`` is off)."""
    from spacy.tokens import Doc

    docs = []
    for example in examples:
        words = list(example.tokens)
        spaces = [True] * len(words)
        if spaces:
            spaces[-1] = False
        docs.append(Doc(vocab, words=words, spaces=spaces, ents=list(example.tags) if with_entities and example.tags else None))
    return docs


def write_docbin(examples: Sequence, vocab, path: Path) -> int:
    """Write ``examples`` as a ``.spacy`` DocBin; returns the number of entities written."""
    from spacy.tokens import DocBin

    docs = examples_to_docs(examples, vocab)
    DocBin(docs=docs, store_user_data=False).to_disk(path)
    return sum(len(doc.ents) for doc in docs)


def doc_tags(doc) -> list[str]:
    """IOB2 tags of a predicted ``Doc``, one per token."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]


def train_spacy(splits: dict[str, list], out: Path, seconds: float, seed: int,
                max_steps: int | None = None) -> tuple[object, dict]:
    """Train spaCy's efficiency NER pipeline for ``seconds`` of training time, or for ``max_steps`` steps
    (a budget that does not depend on what else runs on the machine); returns ``(nlp, figures)`` with the
    best checkpoint on validation loaded."""
    import spacy
    from spacy.cli.init_config import init_config
    from spacy.schemas import ConfigSchemaTraining
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import create_evaluation_callback, create_train_batches, train_while_improving
    from spacy.util import registry, resolve_dot_names

    out.mkdir(parents=True, exist_ok=True)
    vocab = spacy.blank("en").vocab
    entities = {split: write_docbin(splits[split], vocab, out / f"{split}.spacy") for split in ("train", "validation")}
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["paths"]["train"] = str(out / "train.spacy")
    config["paths"]["dev"] = str(out / "validation.spacy")
    config["system"]["seed"] = seed
    config["training"]["max_steps"] = 0  # no step limit: the wall-time budget decides
    config["training"]["patience"] = 0
    config.to_disk(out / "config.cfg")
    start_init = time.perf_counter()
    nlp = init_nlp(config, use_gpu=-1)
    init_seconds = time.perf_counter() - start_init
    resolved = nlp.config.interpolate()
    T = registry.resolve(resolved["training"], schema=ConfigSchemaTraining)
    train_corpus, dev_corpus = resolve_dot_names(resolved, [T["train_corpus"], T["dev_corpus"]])
    optimizer = T["optimizer"]
    evaluate = create_evaluation_callback(nlp, dev_corpus, T["score_weights"])
    eval_seconds = 0.0

    def timed_evaluate():
        nonlocal eval_seconds
        t = time.perf_counter()
        try:
            return evaluate()
        finally:
            eval_seconds += time.perf_counter() - t

    steps = train_while_improving(
        nlp, optimizer, create_train_batches(nlp, train_corpus, T["batcher"], T["max_epochs"]), timed_evaluate,
        dropout=T["dropout"], accumulate_gradient=T["accumulate_gradient"], patience=0, max_steps=0,
        eval_frequency=T["eval_frequency"], exclude=T["frozen_components"],
        annotating_components=T["annotating_components"], before_update=T["before_update"])
    best_bytes, best_score, info = None, -1.0, {}
    start = time.perf_counter()
    for _, info, is_best in steps:
        if is_best:
            best_bytes, best_score = _snapshot(nlp, optimizer), info["score"]
        if max_steps and info["step"] + 1 >= max_steps:
            break
        if not max_steps and time.perf_counter() - start - eval_seconds >= seconds:
            break
    train_seconds = time.perf_counter() - start - eval_seconds
    score, _ = timed_evaluate() if not optimizer.averages else _evaluate_averaged(nlp, optimizer, timed_evaluate)
    if score >= best_score:
        best_bytes, best_score = _snapshot(nlp, optimizer), score
    nlp.from_bytes(best_bytes)
    nlp.to_disk(out / "model-best")
    return nlp, {"train_seconds": round(train_seconds, 1), "eval_seconds_not_counted": round(eval_seconds, 1),
                 "init_seconds": round(init_seconds, 1), "steps": info.get("step", 0) + 1,
                 "epochs_completed": info.get("epoch", 0), "words_seen": info.get("words", 0),
                 "best_validation_ents_f": round(best_score, 4), "train_entities": entities["train"],
                 "budget": f"{max_steps} steps" if max_steps else f"{seconds:g} s",
                 "config": SPACY_INIT + "; training.max_steps=0, training.patience=0", "spacy_version": spacy.__version__}


def _snapshot(nlp, optimizer) -> bytes:
    if optimizer.averages:
        with nlp.use_params(optimizer.averages):
            return nlp.to_bytes()
    return nlp.to_bytes()


def _evaluate_averaged(nlp, optimizer, evaluate):
    with nlp.use_params(optimizer.averages):
        return evaluate()


def predict_spacy(nlp, examples: Sequence, batch_size: int = 1000) -> tuple[list[list[str]], float]:
    """Tags for every word of ``examples`` and the seconds it took (``Doc`` construction included)."""
    list(nlp.pipe(examples_to_docs(examples[:200], nlp.vocab, with_entities=False), batch_size=batch_size))  # warm-up
    start = time.perf_counter()
    docs = examples_to_docs(examples, nlp.vocab, with_entities=False)
    predicted = [doc_tags(doc) for doc in nlp.pipe(docs, batch_size=batch_size)]
    return predicted, time.perf_counter() - start


def run_tagtune(name: str, args: argparse.Namespace, model: str) -> dict:
    out = args.out / f"tagtune_{name}"
    command = [sys.executable, "examples/token-classification/run_ner.py", "--model_name_or_path", model,
               "--max_seq_length", "128", "--per_device_train_batch_size", "32", "--learning_rate", "5e-5",
               "--num_train_epochs", "1000", "--max_train_seconds", str(args.seconds), "--seed", str(args.seed),
               "--do_train", "--train_file", str(args.data / SPLIT_FILES["train"]), "--output_dir", str(out),
               "--overwrite_output_dir", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
               *TAGTUNE_CONFIGS[name], *args.tagtune_extra.split()]
    print(f"training tagtune {name} for {args.seconds} s ...", flush=True)
    code, wall, rss = run_child(command, args.out / f"tagtune_{name}.log")
    if code != 0:
        sys.exit(f"tagtune {name} failed (exit {code}); see {args.out / f'tagtune_{name}.log'}")
    state = json.loads((out / "trainer_state.json").read_text())
    train = json.loads((out / "train_results.json").read_text())
    return {"flags": " ".join([*TAGTUNE_CONFIGS[name], *args.tagtune_extra.split()]), "train_seconds": round(train["train_runtime"], 1),
            "process_wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1), "steps": state["global_step"],
            "epochs": round(state["epoch"], 3), "dir": str(out)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "spacy")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seconds", type=float, default=900.0, help="training time of each system")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max_steps", type=int, default=None, help="train spaCy for this many steps instead of "
                        "--seconds (10142 = its 15 minutes on the Intel Xeon of the first comparison; a step budget "
                        "gives the same model on a busy machine)")
    parser.add_argument("--tagtune-configs", nargs="*", default=["context_crf"], choices=list(TAGTUNE_CONFIGS),
                        help="none: spaCy only")
    parser.add_argument("--tagtune-extra", default="", help="more run_ner.py flags for every tagtune run; they "
                        "override the defaults (e.g. '--learning_rate 1e-4 --context_size 32')")
    parser.add_argument("--skip-spacy", action="store_true")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="validation sentences (both systems)")
    parser.add_argument("--max_predict_samples", type=int, default=None, help="test sentences (both systems)")
    args = parser.parse_args(argv)
    if not (args.data / SPLIT_FILES["train"]).is_file():
        sys.exit(f"CoNLL-2003 .txt files not found in {args.data}")
    import torch

    from tagtune.defaults import packaged_model_dir
    from tagtune.metrics import score

    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = read_conll_splits(args.data, args.max_eval_samples, args.max_predict_samples)
    test = splits["test"]
    gold = [list(e.tags) for e in test]
    words = sum(len(e.tokens) for e in test)
    figures: dict = {"command": " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                     "budget_seconds": args.seconds, "test_sentences": len(test), "test_words": words,
                     "torch_threads": torch.get_num_threads()}
    if not args.skip_spacy:
        print(f"training spaCy for {f'{args.max_steps} steps' if args.max_steps else f'{args.seconds} s'} ...", flush=True)
        nlp, spacy_figures = train_spacy(splits, args.out / "spacy", args.seconds, args.seed, args.max_steps)
        predicted, seconds = predict_spacy(nlp, test)
        assert [len(p) for p in predicted] == [len(g) for g in gold], "spaCy kept the given words"
        result = score(gold, predicted)
        figures["spacy"] = {**spacy_figures, "test_f1": round(result["f1"], 4), "test_precision": round(result["precision"], 4),
                            "test_recall": round(result["recall"], 4), "predict_words_per_s": round(words / seconds, 1)}
        print(json.dumps(figures["spacy"]), flush=True)
    model = str(packaged_model_dir())
    for name in args.tagtune_configs:
        record = run_tagtune(name, args, model)
        out = Path(record.pop("dir"))
        validation, _, _ = score_decodings(out, splits["validation"], methods=("viterbi",))
        score_decodings(out, test[:64], methods=("viterbi",))  # warm-up
        scores, seconds, _ = score_decodings(out, test, methods=("viterbi",))
        record.update({"validation_f1": round(validation["viterbi"]["f1"], 4), "test_f1": round(scores["viterbi"]["f1"], 4),
                       "test_precision": round(scores["viterbi"]["precision"], 4),
                       "test_recall": round(scores["viterbi"]["recall"], 4), "predict_words_per_s": round(words / seconds, 1)})
        figures.setdefault("tagtune", {})[name] = record
        print(json.dumps({name: record}), flush=True)
    if "tagtune" in figures:
        best = max(figures["tagtune"], key=lambda n: figures["tagtune"][n]["validation_f1"])
        figures["tagtune_best_by_validation"] = best
        if "spacy" in figures:
            gap = 100 * (figures["tagtune"][best]["test_f1"] - figures["spacy"]["test_f1"])
            figures["tagtune_minus_spacy_test_f1_points"] = round(gap, 2)
            figures["target_5_points_met"] = gap >= 5
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    (args.out / "RESULTS.md").write_text(markdown(figures))
    print(markdown(figures))
    return figures


def markdown(figures: dict) -> str:
    rows = ["| system | training s | steps | test F1 | precision | recall | predict words/s |", "|---|---|---|---|---|---|---|"]
    if "spacy" in figures:
        s = figures["spacy"]
        rows.append(f"| spaCy {s['spacy_version']} efficiency NER (CPU) | {s['train_seconds']} | {s['steps']} | "
                    f"{100 * s['test_f1']:.2f} | {100 * s['test_precision']:.2f} | {100 * s['test_recall']:.2f} | "
                    f"{s['predict_words_per_s']} |")
    for name, t in figures.get("tagtune", {}).items():
        rows.append(f"| tagtune {name} ({t['flags'] or 'no option'}) | {t['train_seconds']} | {t['steps']} | "
                    f"{100 * t['test_f1']:.2f} | {100 * t['test_precision']:.2f} | {100 * t['test_recall']:.2f} | "
                    f"{t['predict_words_per_s']} |")
    if "tagtune_minus_spacy_test_f1_points" in figures:
        rows += ["", (f"tagtune ({figures['tagtune_best_by_validation']}) minus spaCy, test F1: "
                      f"{figures['tagtune_minus_spacy_test_f1_points']:+.2f} points")]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
