"""The CRF: likelihood against brute force, constraints, gradients, and a tiny CRF model end to end."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tagtune.crf import CRF, TokenClassifierWithCRF, decoder_for_model, gather_words, wrap_with_crf
from tagtune.labels import validate_tags

REPO = Path(__file__).resolve().parents[1]
IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def random_crf(labels: list[str], scheme: str, seed: int) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(labels, scheme)
    with torch.no_grad():
        crf.transitions.normal_()
    return crf


def path_score(emissions: np.ndarray, transitions: np.ndarray, path: tuple[int, ...]) -> float:
    n = emissions.shape[1]
    total = transitions[n, path[0]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        total += transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return float(total)


def brute_force_log_likelihood(crf: CRF, emissions: np.ndarray, gold: tuple[int, ...], constrained: bool) -> float:
    transitions = crf.transition_scores().astype(np.float64)
    scheme = crf.scheme if constrained else "none"
    valid = [p for p in itertools.product(range(crf.num_labels), repeat=len(gold))
             if not validate_tags([crf.labels[i] for i in p], scheme)]
    log_z = np.logaddexp.reduce([path_score(emissions, transitions, p) for p in valid])
    return path_score(emissions, transitions, gold) - log_z


def random_valid_path(labels: list[str], scheme: str, length: int, rng: np.random.Generator) -> tuple[int, ...]:
    while True:
        path = tuple(int(i) for i in rng.integers(0, len(labels), size=length))
        if not validate_tags([labels[i] for i in path], scheme):
            return path


@pytest.mark.parametrize("labels,scheme", [(IOB2, "IOB2"), (BIOES, "BIOES")])
@pytest.mark.parametrize("constrained", [True, False])
def test_log_likelihood_equals_brute_force(labels: list[str], scheme: str, constrained: bool) -> None:
    rng = np.random.default_rng(0)
    crf = random_crf(labels, scheme, seed=1)
    lengths = [1, 2, 3, 4, 4, 3]
    width = max(lengths)
    emissions = torch.from_numpy(rng.normal(size=(len(lengths), width, len(labels))).astype(np.float32))
    golds = [random_valid_path(labels, scheme, n, rng) for n in lengths]
    tags = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for b, gold in enumerate(golds):
        tags[b, : len(gold)] = torch.tensor(gold)
        mask[b, : len(gold)] = True
    got = crf.log_likelihood(emissions, tags, mask, constrained=constrained).detach().numpy()
    for b, gold in enumerate(golds):
        expected = brute_force_log_likelihood(crf, emissions[b, : len(gold)].numpy().astype(np.float64), gold,
                                              constrained)
        assert got[b] == pytest.approx(expected, abs=1e-4), (b, gold)


def test_constraints_lifted_only_where_the_gold_path_breaks_them() -> None:
    # A window cut inside an entity starts with I-PER: the start constraint is lifted for it alone.
    crf = random_crf(IOB2, "IOB2", seed=2)
    rng = np.random.default_rng(3)
    emissions = torch.from_numpy(rng.normal(size=(1, 3, len(IOB2))).astype(np.float32))
    gold = (2, 2, 0)  # I-PER I-PER O
    got = crf.log_likelihood(emissions, torch.tensor([gold]), torch.ones(1, 3, dtype=torch.bool))
    assert torch.isfinite(got).all()
    transitions = crf.transition_scores().astype(np.float64)
    e = emissions[0].numpy().astype(np.float64)
    # Normaliser: every path whose pairs are valid IOB2, whatever its first label.
    valid = [p for p in itertools.product(range(len(IOB2)), repeat=3)
             if all(crf.allowed[a, b] for a, b in itertools.pairwise(p))]
    expected = path_score(e, transitions, gold) - np.logaddexp.reduce([path_score(e, transitions, p) for p in valid])
    assert float(got[0].detach()) == pytest.approx(expected, abs=1e-4)


def test_sequences_without_words_contribute_nothing() -> None:
    crf = random_crf(IOB2, "IOB2", seed=4)
    emissions = torch.randn(2, 3, len(IOB2))
    mask = torch.tensor([[True, True, False], [False, False, False]])
    tags = torch.tensor([[1, 2, 0], [0, 0, 0]])
    got = crf.log_likelihood(emissions, tags, mask)
    assert got[1] == 0.0 and got[0] < 0


def test_gradient_flows_to_emissions_and_transitions() -> None:
    crf = random_crf(IOB2, "IOB2", seed=5)
    emissions = torch.randn(2, 4, len(IOB2), requires_grad=True)
    tags = torch.tensor([[1, 2, 0, 3], [0, 3, 4, 0]])
    loss = crf.loss(emissions, tags, torch.ones(2, 4, dtype=torch.bool))
    loss.backward()
    assert emissions.grad is not None and emissions.grad.abs().sum() > 0
    assert crf.transitions.grad is not None and torch.isfinite(crf.transitions.grad).all()
    # A forbidden transition (O -> I-PER) gets exactly no gradient: no allowed path uses it.
    assert crf.transitions.grad[0, 2] == 0
    assert crf.transitions.grad[len(IOB2), 2] == 0  # nor the start I-PER


@pytest.mark.parametrize("labels,scheme", [(IOB2, "IOB2"), (BIOES, "BIOES")])
def test_decode_is_the_best_valid_path_by_brute_force(labels: list[str], scheme: str) -> None:
    rng = np.random.default_rng(6)
    crf = random_crf(labels, scheme, seed=7)
    transitions = crf.transition_scores().astype(np.float64)
    for _ in range(30):
        steps = int(rng.integers(1, 5))
        emissions = rng.normal(size=(1, steps, len(labels))).astype(np.float32)
        got = crf.decode(torch.from_numpy(emissions), torch.ones(1, steps, dtype=torch.bool))[0]
        paths = [p for p in itertools.product(range(len(labels)), repeat=steps)
                 if not validate_tags([labels[i] for i in p], scheme)]
        best = max(paths, key=lambda p: path_score(emissions[0].astype(np.float64), transitions, p))
        assert tuple(got) == best
        # The tagtune decoder (log-softmax scores, as inference feeds it) finds the same path.
        log_probs = torch.log_softmax(torch.from_numpy(emissions[0]), dim=-1).numpy()
        assert crf.decoder()(log_probs) == [labels[i] for i in best]


def test_gather_words_packs_labelled_positions() -> None:
    logits = torch.arange(2 * 6 * 2, dtype=torch.float32).reshape(2, 6, 2)
    labels = torch.tensor([[-100, 1, -100, 0, 1, -100], [-100, -100, -100, 2, -100, -100]])
    emissions, tags, mask = gather_words(logits, labels)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert tags.tolist() == [[1, 0, 1], [2, 0, 0]]
    assert emissions[0, :, 0].tolist() == [2.0, 6.0, 8.0]
    assert emissions[1, 0, 0].item() == 18.0


def test_wrapper_loss_ignores_context_and_matches_crf_on_words(tiny_bert_dir: Path) -> None:
    from transformers import AutoModelForTokenClassification

    encoder = AutoModelForTokenClassification.from_pretrained(tiny_bert_dir, num_labels=len(IOB2),
                                                              ignore_mismatched_sizes=True)
    model = wrap_with_crf(encoder, IOB2, "IOB2")
    input_ids = torch.randint(5, 60, (2, 8))
    labels = torch.full((2, 8), -100)
    labels[0, 3:6] = torch.tensor([1, 2, 0])
    labels[1, 2] = 3
    out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels)
    emissions, tags, mask = gather_words(out.logits, labels)
    assert out.loss.item() == pytest.approx(model.crf.loss(emissions, tags, mask).item())
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert decoder_for_model(model, model.crf.decoder("argmax")).method == "argmax"


def _toy_conll(tmp_path: Path) -> dict[str, Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from test_train import make_sentences, write_conll

    return {"train": write_conll(tmp_path / "train.txt", make_sentences(48, 0)),
            "validation": write_conll(tmp_path / "valid.txt", make_sentences(12, 1)),
            "test": write_conll(tmp_path / "test.txt", make_sentences(12, 2))}


def test_crf_model_trains_saves_loads_and_predicts_valid_sequences(tiny_bert_dir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "examples" / "token-classification"))
    import run_ner
    from transformers import AutoModelForTokenClassification

    from tagtune.checkpoint import load_checkpoint
    from tagtune.config import DataConfig
    from tagtune.evaluate import evaluate_examples
    from tagtune.inference import model_forward
    from tagtune.readers import read_file

    files = _toy_conll(tmp_path)
    out = tmp_path / "crf-model"
    results = run_ner.main([
        "--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train", "--do_eval",
        "--do_predict", "--num_train_epochs", "6", "--learning_rate", "5e-3", "--per_device_train_batch_size", "8",
        "--max_seq_length", "32", "--report_to", "none", "--save_strategy", "no", "--seed", "1", "--use_cpu", "true",
        "--disable_tqdm", "true", "--crf", "--train_file", str(files["train"]),
        "--validation_file", str(files["validation"]), "--test_file", str(files["test"])])
    assert (out / "crf.safetensors").is_file() and (out / "model.safetensors").is_file()
    assert not list(out.glob("*.bin"))
    assert json.loads((out / "tagtune_config.json").read_text())["model"]["crf"] is True
    assert results["predict_f1"] > 0.8, results

    checkpoint = load_checkpoint(out)
    assert checkpoint.transitions is not None and checkpoint.transitions.shape == (8, 7)
    assert np.abs(checkpoint.transitions).max() > 0.01  # the transitions did learn
    examples, _ = read_file(files["test"], DataConfig(test_file=files["test"]), split="test")
    result = evaluate_examples(model_forward(checkpoint.model), checkpoint.aligner(), examples, checkpoint.decoder())
    assert all(validate_tags(tags, checkpoint.scheme) == [] for tags in result.predictions)
    assert [len(p) for p in result.predictions] == [len(e.tokens) for e in examples]
    assert result.metrics["f1"] == pytest.approx(results["predict_f1"])

    # Plain transformers still loads the directory (the CRF is simply not used).
    plain = AutoModelForTokenClassification.from_pretrained(out)
    assert plain.config.id2label == checkpoint.model.config.id2label
    # The wrapper reloads with the same transitions.
    again = TokenClassifierWithCRF.from_pretrained(out)
    assert np.allclose(again.crf.transition_scores(), checkpoint.transitions)


def test_crf_with_label_all_tokens_is_refused(tiny_bert_dir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "examples" / "token-classification"))
    import run_ner

    from tagtune.errors import ConfigError

    files = _toy_conll(tmp_path)
    with pytest.raises(ConfigError, match="--label_all_tokens"):
        run_ner.main(["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(tmp_path / "o"), "--do_train",
                      "--crf", "--label_all_tokens", "--train_file", str(files["train"]), "--report_to", "none",
                      "--use_cpu", "true"])


def test_crf_training_resumes_from_a_checkpoint(tiny_bert_dir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "examples" / "token-classification"))
    import run_ner
    from safetensors.torch import load_file

    files = _toy_conll(tmp_path)
    out = tmp_path / "resume"
    flags = ["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train", "--crf",
             "--learning_rate", "5e-3", "--per_device_train_batch_size", "8", "--max_seq_length", "32",
             "--report_to", "none", "--save_strategy", "steps", "--save_steps", "2", "--seed", "1",
             "--use_cpu", "true", "--disable_tqdm", "true", "--train_file", str(files["train"])]
    run_ner.main(flags + ["--max_steps", "2"])
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "crf.safetensors").is_file()
    assert not any(k.startswith("encoder.") for k in load_file(str(checkpoint / "model.safetensors")))
    run_ner.main(flags + ["--max_steps", "4", "--resume_from_checkpoint", "latest", "--overwrite_output_dir"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_wordless_batch_has_zero_loss_and_backpropagates() -> None:
    crf = CRF(IOB2, "IOB2")
    emissions = torch.randn(2, 0, len(IOB2), requires_grad=True)
    loss = crf.loss(emissions, torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
