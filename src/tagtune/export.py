"""ONNX export (torch.onnx), dynamic int8 quantization (ONNX Runtime) and a parity report; the export
is loaded by :func:`tagtune.checkpoint.load_checkpoint` (``backend="onnx"``).

An export folder is self-contained: ``model.onnx`` (fp32), ``model_int8.onnx`` (when quantized), the
tokenizer, ``config.json`` (label names), ``tagtune_config.json`` (scheme, windows, decoding), the
calibration of entity scores (``calibration.json``, when the model has one) and ``export_report.json``. ``tagtune.load(folder)`` and ``tagtune predict folder`` use it directly.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagtune.checkpoint import FP32_FILE, INT8_FILE, Checkpoint, OnnxBackend, load_checkpoint
from tagtune.corpus import Example
from tagtune.errors import ConfigError, ExportError
from tagtune.fileio import atomic_write_json
from tagtune.inference import pad_batch
from tagtune.outputs import CONFIG_FILE, load_run_config
from tagtune.predict import PredictConfig, Tagger, pretokenize

logger = logging.getLogger(__name__)

REPORT_FILE = "export_report.json"
QUANTIZATIONS = ("int8",)
# Logits of the fp32 graph may differ from torch by float rounding only.
FP32_TOLERANCE = 1e-3
_FUSABLE = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert")

CHECK_TEXTS = (
    "EU rejects German call to boycott British lamb.",
    "Peter Blackburn reported from Brussels on Monday.",
    "Angela Merkel visited Paris and met Emmanuel Macron at the Élysée Palace.",
    "José Ángel García moved from Zürich to São Paulo in 2019.",
    "The New York Stock Exchange fell 2.5% after Apple Inc. reported earnings.",
    "東京 and 北京 are capitals; 😀 emoji and zero\u200bwidth characters appear too.",
    "Manchester United beat Chelsea 2-1 at Old Trafford on Saturday.",
    "Dr. Smith of the World Health Organization spoke in Geneva.",
)


class _LogitsOnly(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@dataclass(frozen=True)
class ExportConfig:
    """What ``tagtune export`` writes.

    Attributes:
        quantize: ``None`` (fp32 only) or ``int8`` (dynamic int8 weights and activations, ONNX Runtime).
        opset: ONNX opset of the exported graph.
        optimize: Fuse attention / layer norm / GELU with ONNX Runtime's transformer optimizer before
            quantizing (faster, same results up to rounding); off for model types it does not know.
    """

    quantize: str | None = None
    opset: int = 17
    optimize: bool = True

    def __post_init__(self) -> None:
        if self.quantize not in (None, *QUANTIZATIONS):
            raise ConfigError(f"--quantize '{self.quantize}' is not one of {', '.join(QUANTIZATIONS)}")
        if not 14 <= self.opset <= 21:
            raise ConfigError(f"--opset {self.opset} is outside 14..21")


def export_onnx(model_dir: str | Path, output_dir: str | Path, config: ExportConfig = ExportConfig(), *,
                allow_pickle: bool = False, check_texts: list[str] | None = None) -> dict[str, Any]:
    """Export a fine-tuned model to ONNX (and int8), check it against PyTorch, write the report.

    Returns:
        The report (also written to ``export_report.json``): files, sizes, export time, and per ONNX
        file the largest logit difference and the word-tag / entity agreement with PyTorch fp32 on
        ``check_texts``.

    Raises:
        ExportError: The export fails, or the fp32 graph's logits differ from PyTorch's.
    """
    output_dir = Path(output_dir)
    checkpoint = load_checkpoint(model_dir, allow_pickle=allow_pickle)
    model = checkpoint.model
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fp32_path = output_dir / FP32_FILE
    attention = getattr(model.config, "_attn_implementation", None)
    if attention not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        # ONNX Runtime's optimizer fuses the classic attention pattern (and int8 quantizes the fused
        # op); the exported scaled_dot_product_attention stays a chain of small ops.
        try:
            model.set_attn_implementation("eager")
        except (ValueError, ImportError, NotImplementedError):
            attention = None
    wrapper = _LogitsOnly(model).eval()  # an export restores the wrapper's mode: it must be eval too
    ids = torch.tensor([[checkpoint.tokenizer.cls_token_id or 0] + [5] * 6, [1] * 7], dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    axes = {0: "batch", 1: "sequence"}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (ids, mask), str(fp32_path), input_names=["input_ids", "attention_mask"],
                              output_names=["logits"], opset_version=config.opset, dynamo=False,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes})
    except Exception as error:  # the exporter raises many kinds; the user needs one line
        raise ExportError(f"torch.onnx.export failed for '{model_dir}': {type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}") from error
    finally:
        model.eval()
        if attention not in (None, "eager"):
            model.set_attn_implementation(attention)
    _set_metadata(fp32_path, {"model_type": str(getattr(model.config, "model_type", "")), "producer": "tagtune"})
    files = {"fp32": FP32_FILE}
    if config.quantize == "int8":
        _quantize_int8(fp32_path, output_dir / INT8_FILE, model, config.optimize)
        files["int8"] = INT8_FILE
    export_seconds = time.perf_counter() - started
    _copy_companions(checkpoint, Path(model_dir), output_dir)
    report: dict[str, Any] = {
        "source": str(model_dir), "opset": config.opset, "optimized": config.optimize and config.quantize is not None,
        "export_seconds": round(export_seconds, 2), "files": files,
        "size_mb": {k: round((output_dir / f).stat().st_size / 2**20, 2) for k, f in files.items()},
        "parity": parity_report(checkpoint, output_dir, files, list(check_texts or CHECK_TEXTS)),
    }
    atomic_write_json(output_dir / REPORT_FILE, report)
    worst = report["parity"]["fp32"]["max_abs_logit_diff"]
    if worst > FP32_TOLERANCE:
        raise ExportError(f"the ONNX fp32 logits differ from PyTorch by up to {worst:.2e} (> {FP32_TOLERANCE}); "
                          f"see {output_dir / REPORT_FILE}; try another --opset")
    return report


def _set_metadata(path: Path, values: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _quantize_int8(fp32_path: Path, int8_path: Path, model: torch.nn.Module, optimize: bool) -> None:
    """Dynamic int8 quantization (int8 weights with one scale per output channel, activations quantized
    on the fly) of the matrix products and fused attention, after ONNX Runtime's transformer fusions.

    Measured on a MiniLM fine-tuned on CoNLL-2003 (see benchmarks/bench_predict.py): per-tensor
    scales lose 0.7 F1, per-channel ones none; quantizing the embeddings costs accuracy for no time;
    the classifier is tiny and stays fp32. SkipLayerNormalization and BiasGelu are left unfused: on CPU
    ONNX Runtime's kernels for them were several times slower than LayerNormalization + Add and Gelu.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = fp32_path
    fused = fp32_path.with_name("model_fused.onnx")
    model_type = getattr(model.config, "model_type", "")
    if optimize and model_type in _FUSABLE:
        try:
            from onnxruntime.transformers.fusion_options import FusionOptions
            from onnxruntime.transformers.optimizer import optimize_model

            options = FusionOptions("bert")
            options.enable_skip_layer_norm = False
            options.enable_bias_gelu = False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fused_model = optimize_model(str(fp32_path), model_type="bert", optimization_options=options,
                                             num_heads=int(getattr(model.config, "num_attention_heads", 0) or 0),
                                             hidden_size=int(getattr(model.config, "hidden_size", 0) or 0),
                                             opt_level=1, only_onnxruntime=False)
            fused_model.save_model_to_file(str(fused))
            source = fused
        except Exception as error:  # the optimizer is best effort: quantize the plain graph instead
            logger.warning("ONNX Runtime's transformer optimizer failed (%s); quantizing the plain graph", error)
    graph = onnx.load(str(source)).graph
    num_labels = len(getattr(model.config, "id2label", {}) or {})
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    head = [node.name for node in graph.node if node.op_type == "MatMul" and (
        "classifier" in node.name or any(shapes.get(i, ())[-1:] == (num_labels,) for i in node.input))]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs a generic "consider pre-processing" hint on the root logger
    try:
        # Fused ops (com.microsoft domain) have no ONNX shape inference: tell the quantizer they are float.
        quantize_dynamic(str(source), str(int8_path), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=head,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    except Exception as error:
        raise ExportError(f"int8 quantization failed: {type(error).__name__}: {error}") from error
    finally:
        root.setLevel(level)
        fused.unlink(missing_ok=True)


def _copy_companions(checkpoint: Checkpoint, model_dir: Path, output_dir: Path) -> None:
    """Tokenizer, config.json, tagtune_config.json and calibration.json beside the ONNX files."""
    checkpoint.tokenizer.save_pretrained(str(output_dir))
    checkpoint.model.config.save_pretrained(str(output_dir))  # type: ignore[attr-defined]
    from tagtune.calibration import save_calibration
    from tagtune.crf import CRF_FILE

    saved = load_run_config(model_dir)  # its allow-listed fields: never a token an older file may hold
    if saved is not None:
        atomic_write_json(output_dir / CONFIG_FILE, saved)
    if (model_dir / CRF_FILE).is_file():  # a CRF's transitions decode the exported emissions
        shutil.copyfile(model_dir / CRF_FILE, output_dir / CRF_FILE)
    if checkpoint.calibration is not None:  # the same logits: the same temperatures calibrate them
        save_calibration(output_dir, checkpoint.calibration)


def parity_report(checkpoint: Checkpoint, output_dir: Path, files: dict[str, str], texts: list[str]) -> dict[str, Any]:
    """Compare each ONNX file with the PyTorch model in fp32: raw logits, word tags and entities."""
    config = PredictConfig(precision="fp32")
    reference = Tagger(checkpoint, checkpoint.forward(), config)
    expected = list(reference.predict(texts))
    aligner = checkpoint.aligner()
    encoding = aligner.encode([Example(tuple(t[s:e] for s, e in pretokenize(t))) for t in texts], labelled=False)
    ids, mask = pad_batch(encoding.input_ids, aligner.pad_id)
    with torch.inference_mode():
        torch_logits = checkpoint.forward()(ids, mask).float().numpy()
    valid = mask.numpy().astype(bool)
    report = {}
    for kind, name in files.items():
        backend = OnnxBackend(output_dir / name)
        onnx_logits = backend(ids, mask).numpy()
        got = list(Tagger(checkpoint, backend, config, backend="onnx", precision=backend.precision).predict(texts))
        words = sum(len(p.tags) for p in expected)
        same_tags = sum(a == b for p, q in zip(expected, got) for a, b in zip(p.tags, q.tags))
        same_entities = sum(_entity_keys(p) == _entity_keys(q) for p, q in zip(expected, got))
        report[kind] = {
            "max_abs_logit_diff": float(np.abs(onnx_logits - torch_logits)[valid].max()) if valid.any() else 0.0,
            "tag_agreement": round(same_tags / words, 6) if words else 1.0,
            "texts_with_equal_entities": f"{same_entities}/{len(texts)}",
        }
    return report


def _entity_keys(prediction) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label) for e in prediction.entities]
