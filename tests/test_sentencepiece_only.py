"""Checkpoints that ship only a SentencePiece model (``sentencepiece.bpe.model`` for XLM-R, ``spm.model`` for
DeBERTa-v3; no ``tokenizer.json``), as many hub checkpoints do: tagtune converts them to fast tokenizers
(``sentencepiece`` is a dependency), trains and predicts one tag per word, long words included."""

from __future__ import annotations

import io
import string
from pathlib import Path

import pytest

from conftest import WORDS, run_console

URL = "http://example.com/" + "/".join(f"path{i}?q={i}&x=abc" for i in range(40))  # > 600 characters


def sentencepiece_checkpoint(path: Path, family: str) -> Path:
    import sentencepiece as spm
    import transformers

    text = [" ".join(WORDS + [w.capitalize() for w in WORDS] + list(string.ascii_letters + string.digits + "-/?=&.:"))]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text * 30), model_writer=model, vocab_size=100,
                                   model_type="unigram", pad_id=1, unk_id=3, bos_id=0, eos_id=2,
                                   character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    file, tokenizer_class, config_class, model_class = {
        "xlmr": ("sentencepiece.bpe.model", "XLMRobertaTokenizer", "XLMRobertaConfig", "XLMRobertaForTokenClassification"),
        "deberta-v3": ("spm.model", "DebertaV2Tokenizer", "DebertaV2Config", "DebertaV2ForTokenClassification"),
    }[family]
    path.mkdir(parents=True)
    (path / file).write_bytes(model.getvalue())
    getattr(transformers, tokenizer_class)(vocab_file=str(path / file)).save_pretrained(path)
    (path / "tokenizer.json").unlink()  # only the SentencePiece model remains, as on the hub
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=520, pad_token_id=tokenizer.pad_token_id, num_labels=2)
    getattr(transformers, model_class)(config).save_pretrained(path)
    assert not (path / "tokenizer.json").exists() and (path / file).is_file()
    return path


@pytest.mark.parametrize("family", ["xlmr", "deberta-v3"])
def test_a_sentencepiece_only_checkpoint_trains_and_predicts_every_word(family, tmp_path) -> None:
    from tagtune.flags import parse_trainer_args
    from tagtune.train import run_trainer

    model = sentencepiece_checkpoint(tmp_path / family, family)
    sentences = [[("John", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC")],
                 [("see", "O"), (URL, "O"), ("from", "O"), ("London", "B-LOC")]] * 4
    data = tmp_path / "data.conll"
    data.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")
    out = tmp_path / "out"
    assert run_console(lambda argv: run_trainer(*parse_trainer_args(argv)), ["--model_name_or_path", str(model), "--train_file", str(data), "--test_file",
                                      str(data), "--output_dir", str(out), "--do_train", "--do_predict",
                                      "--max_seq_length", "32", "--max_steps", "2", "--report_to", "none",
                                      "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true"]) == 0
    lines = [line.split(" ") for line in (out / "predictions.txt").read_text(encoding="utf-8").splitlines() if line]
    assert [line[0] for line in lines] == [w for s in sentences for w, _ in s]  # one line per word, the URL too
    assert (out / "tokenizer.json").is_file()  # the saved model carries a fast tokenizer
