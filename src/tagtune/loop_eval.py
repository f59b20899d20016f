"""Word-level evaluation of the bare loop, sharded over processes and scored once.

Examples (whole sentences, never split across processes) are sorted by length and dealt out in
batches by an Accelerate-prepared ``DataLoader``. Each process predicts the words of its batch with
tagtune's windows and decoder, and ``accelerator.gather_for_metrics`` collects ``(example index,
tags)`` from every process: it drops the copies Accelerate adds to even out the last batch, so each
word is counted exactly once. Every process then holds all predictions; only the main one writes.

A CRF model (``--crf``) is decoded with its CRF's learned transitions, read afresh at every run: they
change while training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tagtune.align import Aligner, Encoding
from tagtune.corpus import Example
from tagtune.crf import decoder_for_model
from tagtune.decode import Decoder
from tagtune.evaluate import EvalResult
from tagtune.inference import DEFAULT_MAX_TOKENS, iter_word_scores, model_forward
from tagtune.metrics import EntityScorer
from tagtune.progress import progress_bar


class ShardedEvaluator:
    """Predicts and scores one split under Accelerate, from one process to many.

    Args:
        accelerator: The run's ``Accelerator`` (prepares the example loader).
        aligner / decoder: The run's windows and decoding (a CRF model's own decoder replaces it).
        examples: The split, in its order (document context needs neighbours).
        batch_size: Sentences per process and batch (windows of a long one are batched further).
    """

    def __init__(self, accelerator, aligner: Aligner, decoder: Decoder, examples: Sequence[Example],
                 batch_size: int):
        from torch.utils.data import DataLoader

        self.accelerator, self.aligner, self.decoder = accelerator, aligner, decoder
        self.examples = list(examples)
        self.encoding = aligner.encode(self.examples, labelled=False)
        self.rows: list[list[int]] = [[] for _ in self.examples]
        for row, index in enumerate(self.encoding.example_index):
            self.rows[index].append(row)
        size = [sum(len(self.encoding.input_ids[r]) for r in rows) for rows in self.rows]
        # Longest first: each batch holds sentences of similar length, so little padding.
        order = sorted(range(len(self.examples)), key=lambda i: (-size[i], i))
        # A private generator: creating the iterator must not draw from the global RNG, which would
        # change the dropout of the training that follows (and break exact resumption).
        loader = DataLoader(order, batch_size=batch_size, collate_fn=list, generator=torch.Generator())
        self.batch_size = batch_size
        self.loader = accelerator.prepare(loader)

    def _batch_encoding(self, batch: Sequence[int]) -> Encoding:
        """The windows of ``batch``'s examples, renumbered ``0..len(batch)-1``."""
        sub = Encoding(word_counts=[self.encoding.word_counts[i] for i in batch])
        for local, index in enumerate(batch):
            for row in self.rows[index]:
                sub.input_ids.append(self.encoding.input_ids[row])
                sub.word_index.append(self.encoding.word_index[row])
                sub.example_index.append(local)
        return sub

    def run(self, model: torch.nn.Module, description: str = "evaluating") -> EvalResult:
        """Tag every word of the split and score it (when labelled). Call on every process."""
        accelerator = self.accelerator
        forward = model_forward(accelerator.unwrap_model(model))  # keeps the mixed-precision autocast
        decoder = decoder_for_model(accelerator.unwrap_model(model), self.decoder)
        was_training = model.training
        model.eval()
        predictions: list[list[str] | None] = [None] * len(self.examples)
        try:
            with progress_bar(total=len(self.loader), desc=description, unit="batch") as bar:
                for batch in self.loader:
                    local: list[tuple[int, list[str]] | None] = [None] * len(batch)
                    for k, scores in iter_word_scores(
                        forward, self._batch_encoding(batch), len(self.decoder.labels), pad_id=self.aligner.pad_id,
                        batch_size=self.batch_size, max_tokens=DEFAULT_MAX_TOKENS, device=accelerator.device,
                    ):
                        local[k] = (batch[k], decoder(scores))
                    # Batch order, not completion order: gather_for_metrics drops the padding copies
                    # from the end of the last batch.
                    for index, tags in accelerator.gather_for_metrics(local, use_gather_object=True):
                        assert predictions[index] is None, f"example {index} evaluated twice"
                        predictions[index] = tags
                    bar.update(1)
        finally:
            model.train(was_training)
        missing = [i for i, p in enumerate(predictions) if p is None]
        assert not missing, f"examples {missing[:5]} were not evaluated"
        return _score(self.examples, predictions, self.encoding)  # type: ignore[arg-type]


def _score(examples: Sequence[Example], predictions: list[list[str]], encoding: Encoding) -> EvalResult:
    labelled = bool(examples) and all(e.tags is not None for e in examples)
    scorer = EntityScorer()
    for example, tags in zip(examples, predictions, strict=True):
        assert len(tags) == len(example.tokens), "one prediction per word"
        if labelled:
            scorer.update([list(example.tags)], [tags])  # type: ignore[arg-type]
    return EvalResult(metrics=scorer.result() if labelled else {}, predictions=predictions,
                      windowed_examples=encoding.windowed_examples, num_words=int(np.sum([len(p) for p in predictions])),
                      long_words=encoding.long_words, first_long_word=encoding.first_long_word)
