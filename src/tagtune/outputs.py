"""What a saved model directory holds besides weights: the resolved configuration and a model card."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tagtune.config import AlignConfig, DataConfig, EvalConfig, ModelConfig
from tagtune.fileio import atomic_write_json, atomic_write_text

CONFIG_FILE = "tagtune_config.json"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def save_run_config(output_dir: Path, data_cfg: DataConfig, model_cfg: ModelConfig, align_cfg: AlignConfig,
                    eval_cfg: EvalConfig, labels: Sequence[str], scheme: str) -> None:
    """Write ``tagtune_config.json``: everything needed to predict exactly as evaluated."""
    atomic_write_json(output_dir / CONFIG_FILE, {
        "labels": list(labels), "scheme": scheme, "data": _plain(data_cfg), "model": _plain(model_cfg),
        "align": _plain(align_cfg), "eval": _plain(eval_cfg),
    })


def load_run_config(model_dir: Path) -> dict[str, Any] | None:
    """The saved ``tagtune_config.json`` of a model directory, or ``None`` for a plain transformers model."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_model_card(output_dir: Path, model_cfg: ModelConfig, data_cfg: DataConfig, labels: Sequence[str],
                     results: Mapping[str, float], training_args: Any) -> None:
    """A ``README.md`` model card: data, labels, settings, metrics, and how to use the model."""
    data_files = [str(p) for p in (data_cfg.train_file, data_cfg.validation_file, data_cfg.test_file) if p]
    data = data_cfg.dataset_name or ", ".join(data_files) or "unknown"
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in sorted(results.items()))
    settings = {k: getattr(training_args, k, None) for k in (
        "num_train_epochs", "per_device_train_batch_size", "learning_rate", "weight_decay", "seed",
        "gradient_accumulation_steps", "bf16", "fp16")}
    atomic_write_text(output_dir / "README.md", f"""---
library_name: transformers
pipeline_tag: token-classification
tags: [tagtune, token-classification, {data_cfg.task_name}]
---
# Token classification model ({data_cfg.task_name})

Fine-tuned by tagtune from `{model_cfg.model_name_or_path}` on {data}.

## Labels
{", ".join(f"`{label}`" for label in labels)}

## Training settings
{chr(10).join(f"- {k}: {v}" for k, v in settings.items())}

## Results
| metric | value |
|---|---|
{rows}

## Use
With tagtune (windows for long texts, valid tag sequences, character offsets):
```python
import tagtune
tagger = tagtune.load("{output_dir}")
print(tagger("Angela Merkel visited Paris."))
```
With plain transformers:
```python
from transformers import pipeline
ner = pipeline("token-classification", model="{output_dir}", aggregation_strategy="simple")
print(ner("Angela Merkel visited Paris."))
```
""")
