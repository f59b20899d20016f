"""Loading models safely and giving their heads the real label names."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tagtune.config import ModelConfig
from tagtune.errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "tf_model.h5")
_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(?:/[A-Za-z0-9][\w.-]{0,95})?")


def check_weights(model_name_or_path: str, allow_pickle: bool) -> None:
    """Refuse a local model directory whose only weights are pickled (they can run arbitrary code).

    Raises:
        ModelLoadError: The path does not exist, has no weights, or has only pickled weights.
    """
    path = Path(model_name_or_path)
    looks_local = path.exists() or model_name_or_path.startswith((".", "/", "~")) or model_name_or_path.count("/") > 1
    if not looks_local:
        if not _HUB_NAME.fullmatch(model_name_or_path) or ".." in model_name_or_path:
            raise ModelLoadError(
                f"model '{model_name_or_path}' is neither a local directory nor a hub name (owner/name, "
                "letters, digits, '-', '_', '.'); pass a model directory"
            )
        return  # a hub name; transformers is told use_safetensors below
    if not path.is_dir():
        raise ModelLoadError(f"model path '{model_name_or_path}' does not exist or is not a directory")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model directory '{model_name_or_path}' has no config.json; is it a model directory?")
    if (path / "model.safetensors").is_file():
        _check_safetensors(path / "model.safetensors")
        return
    if (path / "model.safetensors.index.json").is_file():
        return
    pickled = [name for name in _PICKLE_WEIGHTS if (path / name).is_file()]
    if pickled and not allow_pickle:
        raise ModelLoadError(
            f"'{model_name_or_path}' has only pickled weights ({pickled[0]}), which can execute code when "
            "loaded; convert them to safetensors or pass --allow_pickle if you trust the source"
        )
    if not pickled:
        raise ModelLoadError(f"model directory '{model_name_or_path}' has no weights (model.safetensors)")


def _check_safetensors(path: Path) -> None:
    """Read the header of a safetensors file: a truncated or corrupt file fails here, in one line.

    Raises:
        ModelLoadError: The header cannot be read or does not cover the file.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError, ValueError) as error:  # SafetensorError is not an OSError
        text = " ".join(str(error).split()) or type(error).__name__
        raise ModelLoadError(f"'{path}' is not a readable safetensors file ({text}); it may be truncated: "
                             "save or download it again") from None


def named_labels(config) -> list[str] | None:
    """The label names a model config carries, or ``None`` for the ``LABEL_n`` placeholders."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label, key=int)]
    if not names or all(_DEFAULT_LABEL.match(str(n)) for n in names):
        return None
    return [str(n) for n in names]


def resolve_labels(model_cfg: ModelConfig, data_labels: Sequence[str]) -> tuple[list[str], bool]:
    """Choose the label order for the model: the checkpoint's own when it already has the same
    names (fine-tuning a fine-tuned model), else the data's.

    Returns:
        ``(labels, reinit_head)`` where ``reinit_head`` says the checkpoint head must be replaced.

    Raises:
        ConfigError: The checkpoint's head has other labels and ``--ignore_mismatched_sizes`` is off.
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_cfg.config_name or model_cfg.model_name_or_path,
                                        trust_remote_code=model_cfg.trust_remote_code,
                                        revision=model_cfg.model_revision, cache_dir=model_cfg.cache_dir,
                                        token=model_cfg.token)
    existing = named_labels(config)
    if not _is_token_classifier(config):
        return list(data_labels), False
    if existing is None:
        # A head with placeholder names (LABEL_0...) was never trained for these labels.
        mismatch = getattr(config, "num_labels", len(data_labels)) != len(data_labels)
        if mismatch:
            logger.warning("replacing the checkpoint's unnamed %d-label head by a new %d-label head",
                           config.num_labels, len(data_labels))
        return list(data_labels), mismatch
    if set(existing) == set(data_labels):
        return existing, False
    if set(data_labels) <= set(existing):
        return existing, False  # data uses a subset of the model's labels; keep the head
    if not model_cfg.ignore_mismatched_sizes:
        missing = sorted(set(data_labels) - set(existing))
        raise ConfigError(
            f"the model's head knows labels {existing} but the data also has {missing}; pass "
            "--ignore_mismatched_sizes to train a new head"
        )
    return list(data_labels), True


def _is_token_classifier(config) -> bool:
    return any(a.endswith("ForTokenClassification") for a in (getattr(config, "architectures", None) or []))


def load_token_classifier(model_cfg: ModelConfig, labels: Sequence[str], reinit_head: bool = False):
    """A ``AutoModelForTokenClassification`` whose ``id2label``/``label2id`` hold the real names."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    check_weights(model_cfg.model_name_or_path, model_cfg.allow_pickle)
    id2label = dict(enumerate(labels))
    config = AutoConfig.from_pretrained(
        model_cfg.config_name or model_cfg.model_name_or_path, num_labels=len(labels), id2label=id2label,
        label2id={label: i for i, label in id2label.items()}, trust_remote_code=model_cfg.trust_remote_code,
        revision=model_cfg.model_revision, cache_dir=model_cfg.cache_dir, token=model_cfg.token,
    )
    try:
        with _load_report_held():
            model, info = AutoModelForTokenClassification.from_pretrained(
                model_cfg.model_name_or_path, config=config, trust_remote_code=model_cfg.trust_remote_code,
                revision=model_cfg.model_revision, cache_dir=model_cfg.cache_dir, token=model_cfg.token,
                ignore_mismatched_sizes=model_cfg.ignore_mismatched_sizes or reinit_head,
                use_safetensors=None if model_cfg.allow_pickle else True, output_loading_info=True,
            )
    except (OSError, ValueError) as error:
        text = str(error).strip().splitlines()
        raise ModelLoadError(f"cannot load model '{model_cfg.model_name_or_path}': {text[0] if text else error}") from None
    _log_new_weights(model, info, len(labels))
    return model


@contextmanager
def _load_report_held() -> Iterator[None]:
    """While a model loads, hold back transformers' table of missing and unexpected weights (its wording
    in transformers 5 and 4): a new head and an unused pooler are expected when fine-tuning, and
    :func:`_log_new_weights` says what matters. A failed load lets the table through."""
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" in message or message.startswith("Some weights of"):
            held.append(record)
            return False
        return True

    from transformers.utils import logging as hf_logging

    hf_logger = logging.getLogger("transformers.modeling_utils")
    hf_logger.addFilter(hold)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights: 100%": a second of noise before every run
    failed = True
    try:
        yield
        failed = False
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        hf_logger.removeFilter(hold)
        for record in held if failed else ():  # the details of a size mismatch, say
            hf_logger.handle(record)


def _log_new_weights(model, info: dict, num_labels: int) -> None:
    """One line on the classification head (new, or the checkpoint's); a warning for new encoder weights."""
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    head = {name for name, _ in model.named_parameters() if not name.startswith(prefix)}
    new = set(info.get("missing_keys") or ()) | {key for key, *_ in info.get("mismatched_keys") or ()}
    if new & head:
        logger.info("new classification head for %d labels (%s), trained from random weights", num_labels,
                    ", ".join(sorted(new & head)))
    else:
        logger.info("classification head for %d labels from the checkpoint", num_labels)
    if new - head:
        logger.warning("%d weights of the encoder are not in the checkpoint and start random: %s", len(new - head),
                       ", ".join(sorted(new - head)[:5]) + (", ..." if len(new - head) > 5 else ""))
    if info.get("unexpected_keys"):
        logger.debug("checkpoint weights a token classifier does not use: %s", ", ".join(sorted(info["unexpected_keys"])))
