"""Label audit and calibration on CoNLL-2003 (issue 18): planted annotation errors found, entity scores calibrated.

1. Plant noise in a copy of the test set: ``--rate`` of the gold entity spans (seeded), in turn a type swap,
   a boundary moved by one word, a deleted entity and a spurious entity added on ``O`` words.
2. Audit the noisy copy with a model trained on the training set (``tagtune inspect DATA --model MODEL``'s
   ranking): precision of the top K suspects (K = planted errors) and recall of the planted errors in the
   top 2K. A suspect finds a planted error when it is in the same sentence and its gold or suggested span
   shares a word with the planted span.
3. Audit the unmodified test set and list the top suspects (real annotation errors, or model errors).
4. Calibration: a temperature fitted on the validation split, expected calibration error (ECE) of entity
   scores on the test split before and after, and the reliability diagram in a report
   (``tagtune evaluate --calibrate`` on the validation split, then the test report).

    python benchmarks/bench_audit.py --model /path/to/conll-model    # a tagtune model trained on CoNLL-2003 train
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stamp import machine_stamp  # noqa: E402 - benchmarks/ is on sys.path only now

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003" / "json"
KINDS = ("type", "boundary", "deleted", "spurious")


def spans_of(tags) -> list[tuple[str, int, int]]:
    from tagtune.labels import get_entities

    return [(span.type, span.start, span.end) for span in get_entities(list(tags))]  # end exclusive


def plant(examples, rate: float, seed: int):
    """A noisy copy of ``examples`` and the planted errors: ``(sentence, kind, words)``."""
    rng = random.Random(seed)
    tags = [list(e.tags) for e in examples]
    types = sorted({t for e in examples for t, _, _ in spans_of(e.tags)})
    everything = [(i, span) for i, e in enumerate(examples) for span in spans_of(e.tags)]
    chosen = rng.sample(everything, round(rate * len(everything)))
    planted, touched = [], set()
    for n, (i, (kind_type, start, end)) in enumerate(chosen):
        if i in touched:  # one error per sentence: each planted error is unambiguous
            continue
        kind = KINDS[n % len(KINDS)]
        row = tags[i]
        if kind == "type":
            new = rng.choice([t for t in types if t != kind_type])
            row[start:end] = [f"B-{new}"] + [f"I-{new}"] * (end - start - 1)
            words = set(range(start, end))
        elif kind == "boundary":
            if end < len(row) and row[end] == "O":  # one more word
                row[end] = f"I-{kind_type}"
                words = set(range(start, end + 1))
            elif end - start > 1:  # one word less
                row[end - 1] = "O"
                words = set(range(start, end))
            else:
                continue
        elif kind == "deleted":
            row[start:end] = ["O"] * (end - start)
            words = set(range(start, end))
        else:  # spurious: an O word away from entities in this sentence becomes an entity
            free = [w for w in range(len(row)) if row[w] == "O" and (w == 0 or row[w - 1] == "O")
                    and (w + 1 == len(row) or row[w + 1] == "O") and examples[i].tokens[w].isalpha()]
            if not free:
                continue
            w = rng.choice(free)
            row[w] = f"B-{rng.choice(types)}"
            words = {w}
        touched.add(i)
        planted.append((i, kind, words))
    noisy = [replace(e, tags=tuple(t)) for e, t in zip(examples, tags, strict=True)]
    return noisy, planted


def suspect_words(suspect) -> set[int]:
    words: set[int] = set()
    for span in (suspect.gold, suspect.suggested):
        if span is not None:
            words |= set(range(span.start, span.end))
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a tagtune model trained on CoNLL-2003 train")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "audit")
    args = parser.parse_args()

    from tagtune.audit import audit_examples
    from tagtune.calibration import collect_entity_scores, fit_calibration
    from tagtune.checkpoint import load_checkpoint
    from tagtune.config import DataConfig
    from tagtune.decode import Decoder
    from tagtune.inference import model_forward
    from tagtune.run import prepare_data

    args.out.mkdir(parents=True, exist_ok=True)
    ck = load_checkpoint(args.model)
    forward, aligner = model_forward(ck.model), ck.aligner()
    decoder = Decoder(ck.labels, ck.scheme, "viterbi")
    test = prepare_data(DataConfig(test_file=args.data / "test.json")).corpus.splits["test"]
    validation = prepare_data(DataConfig(validation_file=args.data / "validation.json")).corpus.splits["validation"]
    figures: dict = {"command": " ".join(sys.argv), "stamp": machine_stamp(), "model": args.model}

    # 1-2. Planted errors.
    noisy, planted = plant(test, args.rate, args.seed)
    start = time.perf_counter()
    audit = audit_examples(forward, aligner, noisy, decoder, ck.scheme, split="test")
    seconds = time.perf_counter() - start
    k = len(planted)
    by_sentence: dict[int, list[tuple[int, str, set[int]]]] = {}
    for n, (i, kind, words) in enumerate(planted):
        by_sentence.setdefault(i, []).append((n, kind, words))

    def found(suspect) -> list[int]:
        return [n for n, _, words in by_sentence.get(suspect.sentence, []) if words & suspect_words(suspect)]

    top_k, top_2k = audit.suspects[:k], audit.suspects[:2 * k]
    precision = sum(1 for s in top_k if found(s)) / max(1, len(top_k))
    recalled = {n for s in top_2k for n in found(s)}
    per_kind = {kind: round(sum(1 for n, (_, kd, _) in enumerate(planted) if kd == kind and n in recalled)
                            / max(1, sum(1 for _, kd, _ in planted if kd == kind)), 4) for kind in KINDS}
    figures["planted"] = {"spans_in_test": sum(len(spans_of(e.tags)) for e in test), "planted_errors": k,
                          "planted_by_kind": {kind: sum(1 for _, kd, _ in planted if kd == kind) for kind in KINDS},
                          "suspects": len(audit.suspects), "precision_at_k": round(precision, 4),
                          "recall_at_2k": round(len(recalled) / max(1, k), 4), "recall_at_2k_by_kind": per_kind,
                          "audit_seconds": round(seconds, 1)}
    print(json.dumps(figures["planted"], indent=2))

    # 3. The unmodified test set.
    clean = audit_examples(forward, aligner, test, decoder, ck.scheme, split="test")
    figures["unmodified_test"] = {"suspects": len(clean.suspects), "top": [
        {"where": s.where, "kind": s.kind, "score": round(s.score, 4), "change": s.describe()}
        for s in clean.suspects[:15]]}

    # 4. Calibration: fitted on validation, measured on test.
    calibration, _ = fit_calibration(forward, aligner, validation, decoder, ck.scheme, data="validation")
    scores = collect_entity_scores(forward, aligner, test, decoder, ck.scheme)
    figures["calibration"] = {"temperature": calibration.temperature, **scores.summary(calibration)}
    print(json.dumps(figures["calibration"], indent=2, default=str)[:1500])
    report = args.out / "calibrated-model"
    subprocess.run(["rm", "-rf", str(report)], check=True)
    subprocess.run(["cp", "-r", str(args.model), str(report)], check=True)
    for command in (["tagtune", "evaluate", str(report), str(args.data / "validation.json"), "--calibrate", "--quiet"],
                    ["tagtune", "evaluate", str(report), str(args.data / "test.json"), "--output_dir",
                     str(args.out / "test-report"), "--quiet"]):
        subprocess.run(command, check=True)
    figures["report"] = str(args.out / "test-report" / "report.html")
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"figures: {args.out / 'figures.json'}")


if __name__ == "__main__":
    main()
