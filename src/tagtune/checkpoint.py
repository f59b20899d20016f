"""Loading a fine-tuned model directory with everything needed to predict as it was evaluated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tagtune.align import Aligner, load_tokenizer
from tagtune.config import AlignConfig, EvalConfig, ModelConfig
from tagtune.decode import Decoder, Decoding
from tagtune.errors import ModelLoadError
from tagtune.modeling import check_weights, named_labels
from tagtune.outputs import load_run_config


@dataclass
class Checkpoint:
    """A loaded token-classification model with its tokenizer, labels, scheme and settings.

    ``transitions`` are a CRF model's learned ``[L + 1, L]`` transition scores (``None`` without CRF);
    ``model`` is then the encoder alone, whose logits are the CRF's emissions.
    """

    path: str
    model: object
    tokenizer: object
    labels: list[str]
    scheme: str
    align: AlignConfig
    eval: EvalConfig
    transitions: np.ndarray | None = None

    def decoder(self, method: Decoding | None = None) -> Decoder:
        """The decoder evaluation used: the saved method (or ``method``), the scheme's constraints and,
        for a CRF model, its learned transitions (arg-max ignores them)."""
        return Decoder(self.labels, self.scheme, method or self.eval.decoding, transitions=self.transitions)

    def aligner(self, **overrides) -> Aligner:
        """An unlabelled :class:`Aligner` with the saved settings (``max_length`` etc. overridable)."""
        from dataclasses import replace

        return Aligner(self.tokenizer, replace(self.align, **overrides) if overrides else self.align)


def load_checkpoint(model_dir: str | Path, *, allow_pickle: bool = False, trust_remote_code: bool = False,
                    device: str = "cpu") -> Checkpoint:
    """Load a model directory written by tagtune (or any transformers token classifier with named labels).

    Raises:
        ModelLoadError: Missing directory, pickled weights without ``allow_pickle``, or unnamed labels.
    """
    from transformers import AutoModelForTokenClassification

    from tagtune.labels import detect_scheme

    path = str(model_dir)
    check_weights(path, allow_pickle)
    saved = load_run_config(Path(path)) or {}
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            path, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError) as error:
        lines = str(error).strip().splitlines()
        raise ModelLoadError(f"cannot load model '{path}': {lines[0] if lines else error}") from None
    labels = named_labels(model.config)
    if labels is None:
        raise ModelLoadError(f"model '{path}' has no label names (id2label is LABEL_0...); it is not a fine-tuned tagger")
    model.to(device).eval()
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    scheme = saved.get("scheme") or detect_scheme([labels])
    align = AlignConfig(**{k: v for k, v in saved.get("align", {}).items() if k in AlignConfig.__dataclass_fields__})
    evaluation = EvalConfig(**{k: v for k, v in saved.get("eval", {}).items() if k in EvalConfig.__dataclass_fields__})
    from tagtune.crf import CRF_FILE

    is_crf = saved.get("model", {}).get("crf") or (Path(path) / CRF_FILE).is_file()
    transitions = _crf_transitions(path, labels) if is_crf else None
    return Checkpoint(path, model, tokenizer, labels, scheme, align, evaluation, transitions)


def _crf_transitions(path: str, labels: list[str]) -> np.ndarray:
    from tagtune.crf import read_crf_file

    crf_labels, _, transitions = read_crf_file(path)
    if crf_labels != labels:
        raise ModelLoadError(f"'{path}': the CRF's labels {crf_labels} differ from the model's {labels}; "
                             "the directory mixes two models")
    return transitions


def model_config_of(path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` a checkpoint was trained from, when recorded."""
    saved = load_run_config(Path(path)) or {}
    return ModelConfig(**saved["model"]) if "model" in saved else ModelConfig(model_name_or_path=str(path))
