"""Shared fixtures: tiny models built in the tests (no download), paths to the shared CoNLL data."""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tokenization caches of the tests go to a fresh folder, never the user's ~/.cache/tagtune.
os.environ.setdefault("TAGTUNE_CACHE", tempfile.mkdtemp(prefix="tagtune-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
CONLL2003 = REPO.parent / "shared" / "data" / "conll2003"

WORDS = (
    "the a an of to in and is was for on with as by at from said says will would has have had "
    "eu rejects german call boycott british lamb peter blackburn brussels paris angela merkel visited "
    "london new york city united states president minister company bank club football match cup won "
    "lost against team reuters monday tuesday wednesday thursday friday year week government police "
    "john smith mary jones china japan france germany berlin tokyo beijing inc corp ltd group party"
).split()


def wordpiece_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return specials + sorted(set(WORDS)) + chars + ["##" + c for c in string.ascii_lowercase + string.digits]


def build_tiny_bert(path: Path, num_labels: int = 2) -> Path:
    """A 2-layer BERT (hidden 32) with a real WordPiece vocabulary, saved as safetensors."""
    from transformers import BertConfig, BertForTokenClassification, BertTokenizer

    vocab = wordpiece_vocab()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=num_labels)
    BertForTokenClassification(config).save_pretrained(path)
    return path


def build_tiny_roberta(path: Path, num_labels: int = 2) -> Path:
    """A 2-layer RoBERTa with a byte-level BPE vocabulary trained here, saved as safetensors."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForTokenClassification, RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    text = " ".join(WORDS + [w.capitalize() for w in WORDS])
    bpe.train_from_iterator([text] * 20, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    path.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(path))
    vocab = json.loads((path / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (path / "merges.txt").read_text().splitlines()[1:] if line.strip()]
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=520, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           num_labels=num_labels)
    RobertaForTokenClassification(config).save_pretrained(path)
    return path


def build_tiny_xlmr(path: Path, num_labels: int = 2) -> Path:
    """A 2-layer XLM-R with a SentencePiece-style tokenizer trained here (Unigram model, Metaspace
    pre-tokenizer, as XLM-R and DeBERTa-v3 have), saved as safetensors."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    unigram.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    text = " ".join(WORDS + [w.capitalize() for w in WORDS] + list(string.ascii_letters + string.digits + "-/?=&.:"))
    unigram.train_from_iterator([text] * 20, trainer=trainers.UnigramTrainer(
        vocab_size=400, special_tokens=specials, unk_token="<unk>"))
    unigram.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(t, unigram.token_to_id(t)) for t in ("<s>", "</s>")])
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(path)
    config = XLMRobertaConfig(vocab_size=unigram.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=520,
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, num_labels=num_labels)
    XLMRobertaForTokenClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def conll2003_dir() -> Path:
    if not (CONLL2003 / "test.txt").is_file():
        pytest.skip(f"CoNLL-2003 is not at {CONLL2003}")
    return CONLL2003


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.fixture(scope="session")
def tiny_ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT that looks fine-tuned: named NER labels, and a sharpened head so that its (random)
    decisions are not near ties."""
    import torch
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    path = build_tiny_bert(tmp_path_factory.mktemp("tiny-ner"), num_labels=len(NER_LABELS))
    model = BertForTokenClassification.from_pretrained(path)
    model.config.id2label = dict(enumerate(NER_LABELS))
    model.config.label2id = {label: i for i, label in enumerate(NER_LABELS)}
    with torch.no_grad():
        model.classifier.weight.mul_(30)
    model.save_pretrained(path)
    return path


def wait_until_healthy(process, base: str, seconds: float, describe) -> None:
    """Poll ``base/health`` until it answers 200; fail with ``describe()`` (the server's log) if the
    process exits or ``seconds`` pass first."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, describe()
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "tagtune serve did not start: " + describe()
        time.sleep(0.2)


def stop_server(process, seconds: float = 30) -> None:
    """Stop a ``tagtune serve`` process as a user would (SIGINT: graceful shutdown); one that does not
    stop within ``seconds`` is killed and the test fails with ``TimeoutExpired``."""
    import signal
    import subprocess

    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def run_console(function, *args) -> int:
    """Run ``function`` as the console scripts do (``tagtune.cli.run_guarded``); return the exit status."""
    from tagtune.cli import run_guarded

    try:
        run_guarded(function, *args)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0
