"""What a saved model directory holds besides weights: the resolved configuration and a model card."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tagtune.config import AlignConfig, DataConfig, EvalConfig, ModelConfig
from tagtune.fileio import atomic_write_json, atomic_write_text

CONFIG_FILE = "tagtune_config.json"


# What a model directory, export, report or tracker records of each configuration: an allow-list, so
# a field added later stays out until it is named here. Secrets (``ModelConfig.token``) never are.
SAVED_FIELDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "data": (DataConfig, ("dataset_name", "dataset_config_name", "train_file", "validation_file", "test_file",
                          "format", "task_name", "text_column_name", "label_column_name", "label_column",
                          "label_names_file", "conllu_tag", "cache_dir", "overwrite_cache", "max_train_samples",
                          "max_eval_samples", "max_predict_samples", "overlapping_spans", "annotator",
                          "preprocessing_num_workers")),
    "model": (ModelConfig, ("model_name_or_path", "config_name", "tokenizer_name", "cache_dir", "model_revision",
                            "trust_remote_code", "ignore_mismatched_sizes", "allow_pickle", "crf")),
    "align": (AlignConfig, ("max_length", "stride", "label_all_tokens", "pad_to_max_length", "context_size")),
    "eval": (EvalConfig, ("batch_size", "decoding", "return_entity_level_metrics", "calibrate", "calibrate_per_label")),
}


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


def saved_fields(config: DataConfig | ModelConfig | AlignConfig | EvalConfig) -> dict[str, Any]:
    """The allow-listed fields (:data:`SAVED_FIELDS`) of a configuration, as JSON values.

    >>> saved_fields(ModelConfig("bert-base-cased", token="hf_secret"))["model_name_or_path"]
    'bert-base-cased'
    >>> "token" in saved_fields(ModelConfig("bert-base-cased", token="hf_secret"))
    False
    """
    names = next(names for kind, names in SAVED_FIELDS.values() if isinstance(config, kind))
    return {name: _plain(getattr(config, name)) for name in names}


def save_run_config(output_dir: Path, data_cfg: DataConfig, model_cfg: ModelConfig, align_cfg: AlignConfig,
                    eval_cfg: EvalConfig, labels: Sequence[str], scheme: str) -> None:
    """Write ``tagtune_config.json``: everything needed to predict exactly as evaluated, nothing secret."""
    atomic_write_json(output_dir / CONFIG_FILE, {
        "labels": list(labels), "scheme": scheme, "data": saved_fields(data_cfg), "model": saved_fields(model_cfg),
        "align": saved_fields(align_cfg), "eval": saved_fields(eval_cfg),
    })


def load_run_config(model_dir: Path) -> dict[str, Any] | None:
    """The saved ``tagtune_config.json`` of a model directory, or ``None`` for a plain transformers model.

    Only allow-listed fields are returned: a file written before the allow-list may hold a hub token,
    which must not travel on into an export or a report.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text(encoding="utf-8"))
    found = {key: saved[key] for key in ("labels", "scheme") if key in saved}
    for section, (_kind, names) in SAVED_FIELDS.items():
        if isinstance(saved.get(section), Mapping):
            found[section] = {k: v for k, v in saved[section].items() if k in names}
    return found


_PER_TYPE_KEY = re.compile(r"(eval|predict)_(.+)_(precision|recall|f1|number)")
_SPLIT_OF_PREFIX = {"eval": "validation", "predict": "test"}
_SETTINGS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
             "learning_rate", "lr_scheduler_type", "warmup_ratio", "weight_decay", "seed", "bf16", "fp16")


def _per_type(output_dir: Path, results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Scores per split and type: the report written beside the model, else flat per-type results."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for key, value in results.items():
        match = _PER_TYPE_KEY.fullmatch(key)
        if match and match.group(2) != "overall":
            split = _SPLIT_OF_PREFIX[match.group(1)]
            found.setdefault(split, {}).setdefault(match.group(2), {})[match.group(3)] = value
    try:
        report = json.loads((output_dir / "report.json").read_text(encoding="utf-8"))
        found[report["split"]] = report["metrics"]["per_type"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return found


def _card_sections(output_dir: Path, data_cfg: DataConfig, labels: Sequence[str], results: Mapping[str, Any],
                   training_args: Any) -> tuple[str, str, str, str]:
    """The data, labels, settings and results sections of the card, in Markdown."""
    saved = load_run_config(output_dir) or {}
    files = {"train": data_cfg.train_file, "validation": data_cfg.validation_file, "test": data_cfg.test_file}
    sizes = {"train": results.get("train_samples"), "validation": results.get("eval_samples"),
             "test": results.get("predict_samples")}
    data_rows = [f"| {split} | {data_cfg.dataset_name or (Path(file).name if file else '')} | {sizes[split] or ''} |"
                 for split, file in files.items() if file or (data_cfg.dataset_name and sizes[split])]
    data = "| split | source | sentences |\n|---|---|---|\n" + "\n".join(data_rows) if data_rows else "unknown"
    types = list(dict.fromkeys(label[2:] for label in labels if label[:2] in ("B-", "I-", "E-", "S-")))
    label_text = (f"{len(labels)} labels, scheme {saved.get('scheme', 'unknown')}"
                  + (f"; entity types: {', '.join(types)}" if types else "")
                  + "\n\n" + ", ".join(f"`{label}`" for label in labels))
    settings = {k: getattr(getattr(training_args, k), "value", getattr(training_args, k)) for k in _SETTINGS
                if getattr(training_args, k, None) not in (None, -1)}  # max_steps -1: not set
    align = saved.get("align", {})
    settings.update({f"align.{k}": align[k] for k in ("max_length", "stride", "label_all_tokens", "context_size")
                     if k in align})
    settings.update({f"eval.{k}": v for k, v in saved.get("eval", {}).items() if k == "decoding"})
    settings_text = "\n".join(f"- {k}: {v}" for k, v in settings.items())
    headline = [(split, prefix) for prefix, split in _SPLIT_OF_PREFIX.items()
                if f"{prefix}_f1" in results or f"{prefix}_overall_f1" in results]
    rows = []
    for split, prefix in headline:
        values = [results.get(f"{prefix}_{k}", results.get(f"{prefix}_overall_{k}")) for k in
                  ("precision", "recall", "f1", "accuracy")]
        rows.append(f"| {split} | " + " | ".join(f"{100 * v:.2f}" if isinstance(v, float) else "" for v in values) + " |")
    results_text = ("| split | precision | recall | F1 | accuracy |\n|---|---|---|---|---|\n" + "\n".join(rows)
                    if rows else "No evaluation was run.")
    for split, per_type in _per_type(output_dir, results).items():
        results_text += f"\n\nPer type ({split}):\n\n| type | precision | recall | F1 | support |\n|---|---|---|---|---|\n"
        results_text += "\n".join(f"| {t} | {100 * s.get('precision', 0):.2f} | {100 * s.get('recall', 0):.2f} | "
                                   f"{100 * s.get('f1', 0):.2f} | {int(s.get('number', 0))} |" for t, s in per_type.items())
    if (output_dir / "report.html").is_file():
        results_text += ("\n\n`report.html` in this directory holds the full evaluation report (confusion, "
                         "learning curves, worst errors).")
    return data, label_text, settings_text, results_text


def write_model_card(output_dir: Path, model_cfg: ModelConfig, data_cfg: DataConfig, labels: Sequence[str],
                     results: Mapping[str, float], training_args: Any) -> None:
    """A ``README.md`` model card: data, labels, settings, metrics (per type), and how to use the model.

    The scheme and alignment settings come from ``tagtune_config.json`` and the per-type scores from
    ``report.json`` in ``output_dir`` when they are there (else from per-type keys of ``results``).
    """
    output_dir = Path(output_dir)
    sources = [str(p) for p in (data_cfg.train_file, data_cfg.validation_file, data_cfg.test_file) if p]
    source = data_cfg.dataset_name or ", ".join(Path(p).name for p in sources) or "unknown data"
    data, label_text, settings_text, results_text = _card_sections(output_dir, data_cfg, labels, results,
                                                                    training_args)
    base = model_cfg.model_name_or_path
    front = ["library_name: transformers", "pipeline_tag: token-classification",
             f"tags: [tagtune, token-classification, {data_cfg.task_name}]"]
    front += [f"base_model: {base}"] if not Path(base).exists() else []  # hub names only, never local paths
    front += [f"datasets: [{data_cfg.dataset_name}]"] if data_cfg.dataset_name else []
    atomic_write_text(output_dir / "README.md", f"""---
{chr(10).join(front)}
---
# Token classification model ({data_cfg.task_name})

Fine-tuned by tagtune from `{base}` on {source}.

## Data
{data}

## Labels
{label_text}

## Training settings
{settings_text}

## Results
Entity-level scores as seqeval's default mode (and upstream `run_ner.py`) computes them, in %.

{results_text}

## Use
With tagtune (any text length: long texts are windowed, tag sequences are valid, entities carry
character offsets and scores):
```python
import tagtune
tagger = tagtune.load("{output_dir}")
print(tagger("Angela Merkel visited Paris."))
```
From the command line: `tagtune evaluate {output_dir} test.conll --output_dir eval` scores labelled data
and writes `eval/report.html`.

With plain transformers (the labels are in `config.json`; texts longer than the model's input need the
pipeline's `stride` option, and its grouping reads B-/I- tags only):
```python
from transformers import pipeline
ner = pipeline("token-classification", model="{output_dir}", aggregation_strategy="simple")
print(ner("Angela Merkel visited Paris."))
```
""")
