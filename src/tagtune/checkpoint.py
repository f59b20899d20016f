"""Loading a model directory with everything needed to predict as it was evaluated, on one of two
backends: ``torch`` (a fine-tuned model directory) or ``onnx`` (a folder written by ``tagtune export``).

Both read the same companions once: label names from ``config.json``, the tokenizer, the saved settings
(``tagtune_config.json``: scheme, windows, decoding), a CRF's transitions and the calibration of entity
scores (``calibration.json``); only the model differs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tagtune.align import Aligner, load_tokenizer
from tagtune.calibration import CALIBRATION_FILE, Calibration, load_calibration
from tagtune.config import AlignConfig, EvalConfig, ModelConfig
from tagtune.crf import CRF_FILE, read_crf_file
from tagtune.decode import Decoder, Decoding
from tagtune.errors import ConfigError, ModelLoadError
from tagtune.inference import Forward, model_forward
from tagtune.labels import detect_scheme
from tagtune.modeling import check_weights, named_labels
from tagtune.outputs import load_run_config

Backend = Literal["auto", "torch", "onnx"]
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
# ONNX Runtime's CPU kernels for these fusions were slower than the ops they replace (see export._quantize_int8).
_SLOW_CPU_FUSIONS = ["SkipLayerNormFusion", "BiasGeluFusion"]


@dataclass
class Checkpoint:
    """A loaded token-classification model with its tokenizer, labels, scheme and settings.

    ``model`` is a transformers model (``backend == "torch"``) or an :class:`OnnxBackend`.
    ``transitions`` are a CRF model's learned ``[L + 1, L]`` transition scores (``None`` without CRF);
    ``model`` is then the encoder alone, whose logits are the CRF's emissions. ``calibration`` holds the
    temperatures of ``calibration.json`` (``None`` without one): they change entity scores, never tags.
    """

    path: str
    model: object
    tokenizer: object
    labels: list[str]
    scheme: str
    align: AlignConfig
    eval: EvalConfig
    transitions: np.ndarray | None = None
    backend: str = "torch"
    calibration: Calibration | None = None

    def decoder(self, method: Decoding | None = None) -> Decoder:
        """The decoder evaluation used: the saved method (or ``method``), the scheme's constraints and,
        for a CRF model, its learned transitions (arg-max ignores them)."""
        return Decoder(self.labels, self.scheme, method or self.eval.decoding, transitions=self.transitions)

    def aligner(self, **overrides) -> Aligner:
        """An unlabelled :class:`Aligner` with the saved settings (``max_length`` etc. overridable)."""
        return Aligner(self.tokenizer, replace(self.align, **overrides) if overrides else self.align)

    def forward(self) -> Forward:
        """The model as a :data:`~tagtune.inference.Forward`: ``(input_ids, attention_mask) -> logits``."""
        if self.backend == "onnx":
            return self.model  # type: ignore[return-value]
        return model_forward(self.model)  # type: ignore[arg-type]


def resolve_backend(model_dir: Path, backend: Backend) -> tuple[str, Path]:
    """Which backend to use for ``model_dir`` and where its files are (``model_dir/onnx`` for ONNX
    exported next to the weights); ``auto`` is ONNX when the folder holds only an ONNX model."""
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"--backend '{backend}' is not one of auto, torch, onnx")
    if not model_dir.is_dir():
        raise ModelLoadError(f"model path '{model_dir}' does not exist or is not a directory")
    has_onnx = any(model_dir.glob("*.onnx"))
    if backend == "torch" or (backend == "auto" and not has_onnx):
        return "torch", model_dir
    if has_onnx:
        return "onnx", model_dir
    if any((model_dir / "onnx").glob("*.onnx")):
        return "onnx", model_dir / "onnx"
    raise ModelLoadError(f"'{model_dir}' holds no ONNX model; run: tagtune export {model_dir} --format onnx "
                         "--quantize int8")


def load_checkpoint(model_dir: str | Path, *, backend: Literal["torch", "onnx"] = "torch", allow_pickle: bool = False,
                    trust_remote_code: bool = False, device: str = "cpu", file: str | None = None,
                    threads: int | None = None) -> Checkpoint:
    """Load a model directory written by tagtune (or any transformers token classifier with named
    labels), or with ``backend="onnx"`` a folder written by ``tagtune export``.

    Args:
        allow_pickle, trust_remote_code, device: For ``torch``.
        file, threads: For ``onnx``: the ONNX file (default: the int8 model, else the fp32 one) and
            the threads of ONNX Runtime.

    Raises:
        ModelLoadError: Missing directory, pickled weights without ``allow_pickle``, no ONNX file, or
            unnamed labels.
    """
    path = Path(model_dir)
    if backend == "onnx":
        model, config = _load_onnx(path, file, threads)
    else:
        model, config = _load_torch(path, allow_pickle, trust_remote_code, device)
    labels = named_labels(config)
    if labels is None:
        raise ModelLoadError(f"model '{path}' has no label names (id2label is LABEL_0...); it is not a fine-tuned tagger")
    saved = load_run_config(path) or {}
    is_crf = saved.get("model", {}).get("crf") or (path / CRF_FILE).is_file()
    tokenizer = load_tokenizer(str(path), trust_remote_code=trust_remote_code)
    # tagtune windows long texts itself: the tokenizer's warning that a text is longer than the model's
    # maximum ("Token indices sequence length is longer than...") would be false, so it is marked as given.
    getattr(tokenizer, "deprecation_warnings", {})["sequence-length-is-longer-than-the-specified-maximum"] = True
    return Checkpoint(str(path), model, tokenizer, labels, saved.get("scheme") or detect_scheme([labels]),
                      _saved(AlignConfig, saved.get("align")), _saved(EvalConfig, saved.get("eval")),
                      _crf_transitions(str(path), labels) if is_crf else None, backend,
                      load_calibration(calibration_dir(path, backend), labels))


def calibration_dir(path: Path, backend: str) -> Path:
    """Where a model's ``calibration.json`` is: its own folder, or for an ONNX export next to the
    weights (``MODEL/onnx``) without one of its own, the model directory (calibrated after the export)."""
    if backend == "onnx" and path.name == "onnx" and not (path / CALIBRATION_FILE).is_file():
        return path.parent
    return path


def _saved(kind: type, values: dict | None) -> Any:
    """``kind`` from its saved fields (fields of other tagtune versions left out)."""
    return kind(**{k: v for k, v in (values or {}).items() if k in kind.__dataclass_fields__})


def _load_torch(path: Path, allow_pickle: bool, trust_remote_code: bool, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForTokenClassification

    check_weights(str(path), allow_pickle)
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            str(path), trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True)
    except (OSError, ValueError) as error:
        lines = str(error).strip().splitlines()
        raise ModelLoadError(f"cannot load model '{path}': {lines[0] if lines else error}") from None
    model.to(device).eval()
    return model, model.config


def _load_onnx(folder: Path, file: str | None, threads: int | None) -> tuple[Any, Any]:
    from transformers import AutoConfig

    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"'{folder}' has no config.json; export with: tagtune export MODEL --format onnx")
    backend = OnnxBackend(find_onnx_file(folder, file), threads=threads)
    config = AutoConfig.from_pretrained(str(folder))
    backend.model_type = backend.model_type or getattr(config, "model_type", None)
    return backend, config


def _crf_transitions(path: str, labels: list[str]) -> np.ndarray:
    crf_labels, _, transitions = read_crf_file(path)
    if crf_labels != labels:
        raise ModelLoadError(f"'{path}': the CRF's labels {crf_labels} differ from the model's {labels}; "
                             "the directory mixes two models")
    return transitions


def model_config_of(path: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` a checkpoint was trained from, when recorded."""
    saved = load_run_config(Path(path)) or {}
    return ModelConfig(**saved["model"]) if "model" in saved else ModelConfig(model_name_or_path=str(path))


class OnnxBackend:
    """An ONNX Runtime session with the ``forward(input_ids, attention_mask) -> logits`` contract of
    :data:`tagtune.inference.Forward` (torch tensors in and out, so the inference loop is shared).

    On CPU the session runs each batch on one thread and :attr:`workers` batches run at once (one
    per core, or ``threads``): for the small batches of token classification this was 10-15% faster
    than splitting each batch across the cores, and the Python bookkeeping overlaps the forward passes.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
                 parallel_batches: bool = True):
        import os

        import onnxruntime as ort

        available = ort.get_available_providers()
        wanted = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        on_cpu = wanted[0] == "CPUExecutionProvider"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.workers = 1
        if on_cpu and parallel_batches:
            options.intra_op_num_threads = 1
            self.workers = threads or os.cpu_count() or 1
        elif threads:
            options.intra_op_num_threads = threads
        disabled = _SLOW_CPU_FUSIONS if on_cpu else []
        try:
            self.session = ort.InferenceSession(str(path), options, providers=wanted, disabled_optimizers=disabled)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"cannot load ONNX model '{path}': {str(error).strip().splitlines()[0]}") from None
        self.path = Path(path)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.precision = "int8" if self.path.name == INT8_FILE or "int8" in self.path.stem else "fp32"
        meta = self.session.get_modelmeta().custom_metadata_map
        self.model_type = meta.get("model_type")

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids.cpu().numpy()
        feed = {"input_ids": ids, "attention_mask": attention_mask.cpu().numpy()}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return torch.from_numpy(self.session.run(["logits"], feed)[0])

    forward = __call__


def find_onnx_file(folder: Path, file: str | None = None) -> Path:
    """The ONNX file of an export folder: ``file`` if given, else the int8 model, else the fp32 one."""
    if file is not None:
        path = folder / file
        if not path.is_file():
            raise ModelLoadError(f"'{path}' does not exist")
        return path
    for name in (INT8_FILE, FP32_FILE):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.onnx"))
    if len(found) == 1:
        return found[0]
    raise ModelLoadError(f"'{folder}' holds {len(found)} ONNX files and none is named {INT8_FILE} or {FP32_FILE}")
