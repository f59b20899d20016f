from __future__ import annotations

import random

from tagtune.align import Aligner, load_tokenizer
from tagtune.config import AlignConfig
from tagtune.corpus import Example
from tagtune.decode import Decoder
from tagtune.evaluate import evaluate_examples
from tagtune.inference import model_forward
from tagtune.metrics import score

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_chunked_evaluation_equals_one_pass_and_keeps_input_order(tiny_bert_dir) -> None:
    import torch
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert_dir, num_labels=len(LABELS),
                                                            ignore_mismatched_sizes=True).eval()
    rng = random.Random(0)
    words = ["paris", "angela", "merkel", "the", "visited", "xyzzy", "london"]
    examples = []
    for i in range(57):
        n = rng.randint(1, 90 if i % 10 == 0 else 12)
        tags = [rng.choice(LABELS) for _ in range(n)]
        examples.append(Example(tuple(rng.choice(words) for _ in range(n)), tuple(tags), doc=str(i // 5)))
    aligner = Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=32, context_size=8))
    decoder = Decoder(LABELS, "IOB2")
    whole = evaluate_examples(model_forward(model), aligner, examples, decoder, batch_size=4, chunk_size=10_000)
    chunked = evaluate_examples(model_forward(model), aligner, examples, decoder, batch_size=4, chunk_size=7)
    assert chunked.predictions == whole.predictions
    assert chunked.metrics == whole.metrics == score([list(e.tags) for e in examples], whole.predictions)
    assert [len(p) for p in chunked.predictions] == [len(e.tokens) for e in examples]
    assert chunked.windowed_examples == whole.windowed_examples > 0
