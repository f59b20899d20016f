"""tagtune: token classification (NER, POS, chunking): fine-tune, evaluate honestly, predict at scale.

``import tagtune`` stays light: torch and transformers load on first use.

>>> import tagtune
>>> callable(tagtune.load)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["load", "Tagger", "Entity", "Prediction", "PredictConfig", "__version__"]

if TYPE_CHECKING:
    from tagtune.predict import Entity, PredictConfig, Prediction, Tagger


def load(model_dir: Any, **kwargs: Any) -> Tagger:
    """Load a :class:`~tagtune.predict.Tagger` (see :func:`tagtune.predict.load` for the options)."""
    from tagtune.predict import load as _load

    return _load(model_dir, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("Tagger", "Entity", "Prediction", "PredictConfig"):
        import tagtune.predict

        return getattr(tagtune.predict, name)
    raise AttributeError(f"module 'tagtune' has no attribute {name!r}")
