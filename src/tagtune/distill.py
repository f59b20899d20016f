"""Distillation: a small, fast student trained on a fine-tuned teacher's per-word probabilities.

The student is, by choice, the teacher with only some of its layers kept (:func:`keep_layers`; by
default evenly spaced, the last one included) or any smaller encoder (``student_model``, with its own
tokenizer). Either way it is an ordinary tagtune model directory, made by the run pipeline
(:func:`tagtune.run.prepare`, :func:`~tagtune.run.evaluate`, :func:`~tagtune.run.finish`): evaluate,
predict, export and serve work on it unchanged; ``distill.json`` and the model card name the teacher and
the distillation settings.

The teacher tags every training sentence (and optional unlabelled text) once, with tagtune's streaming
inference (:func:`tagtune.inference.iter_word_scores` over its own windows); its per-word
log-probabilities are cached on disk. Scores are per *word*, so they align with the student's first
sub-tokens whatever the student's tokenizer: a student window position that gives word ``w`` of a
sentence learns the teacher's distribution of word ``w``.

Loss (:func:`distill_loss`), per batch::

    soft_weight * T^2 * mean_words KL(teacher_T || student_T) + (1 - soft_weight) * gold

``teacher_T`` / ``student_T`` are the distributions softened at temperature ``T``; ``gold`` is the
cross-entropy of the words that have gold tags (a CRF student: its sequence NLL), dropped from batches
without gold (unlabelled text). A CRF teacher's scores are its emissions: the KL matches the student's
emissions up to a constant per word, which the CRF ignores, and the student starts from the teacher's
transitions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tagtune.align import IGNORE_INDEX, Encoding
from tagtune.cache import default_cache_dir, encode_cached, fingerprint
from tagtune.checkpoint import Checkpoint, load_checkpoint
from tagtune.config import RunConfig
from tagtune.corpus import Example
from tagtune.crf import CRF_FILE
from tagtune.errors import ConfigError
from tagtune.fileio import atomic_open, atomic_write_json, atomic_write_text
from tagtune.loop_tools import Clock, Meter, Step, parameter_groups
from tagtune.outputs import load_run_config
from tagtune.run import Need, Run, evaluate, finish, prepare

logger = logging.getLogger(__name__)

DISTILL_FILE = "distill.json"
CACHE_VERSION = 1
# Defaults to be measured (benchmarks/bench_distill.py), not yet measured: Hinton et al.'s T = 2 and an
# even mix of soft and gold loss; 3 layers of the teacher's 6 (MiniLM) for the student.
DEFAULT_TEMPERATURE = 2.0
DEFAULT_SOFT_WEIGHT = 0.5
DEFAULT_STUDENT_LAYERS = 3
_LAYER_LISTS = ("layer", "layers", "h", "block", "blocks")


@dataclass(frozen=True)
class DistillConfig:
    """What to distil and how (the optimisation itself is the run's :class:`~tagtune.config.LoopConfig`).

    Attributes:
        teacher: A fine-tuned tagtune model directory.
        student_layers: Keep this many of the teacher's layers (ignored with ``student_model``).
        keep_layers: Which teacher layers to keep (0-based); default :func:`default_keep_layers`.
        student_model: Another (smaller) encoder to train instead, with its own tokenizer.
        temperature: Softening of both distributions in the KL term.
        soft_weight: Weight of the KL term; ``1 - soft_weight`` weighs the gold loss.
        unlabelled_files: Raw text or words in any format ``tagtune predict`` reads, tagged by the teacher.
        unlabelled_format / text_field: As ``tagtune predict``'s ``--input_format`` / ``--text_field``.
        max_unlabelled_samples: Use only the first N unlabelled documents.
    """

    teacher: Path
    student_layers: int | None = None
    keep_layers: tuple[int, ...] | None = None
    student_model: str | None = None
    temperature: float = DEFAULT_TEMPERATURE
    soft_weight: float = DEFAULT_SOFT_WEIGHT
    unlabelled_files: tuple[Path, ...] = ()
    unlabelled_format: str = "auto"
    text_field: str = "text"
    max_unlabelled_samples: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be positive, got {self.temperature}")
        if not 0 <= self.soft_weight <= 1:
            raise ConfigError(f"--soft_weight must be between 0 and 1, got {self.soft_weight}")
        if self.student_model and (self.student_layers or self.keep_layers):
            raise ConfigError("--student_model trains another encoder; --student_layers / --keep_layers choose layers "
                              "of the teacher: pass one of them")
        if self.student_layers is not None and self.student_layers < 1:
            raise ConfigError(f"--student_layers must be 1 or more, got {self.student_layers}")
        if self.keep_layers is not None and self.student_layers not in (None, len(self.keep_layers)):
            raise ConfigError(f"--keep_layers {','.join(map(str, self.keep_layers))} names {len(self.keep_layers)} "
                              f"layers but --student_layers is {self.student_layers}")

    def public(self) -> dict[str, Any]:
        """The settings as JSON values (``distill.json``, the report)."""
        values = asdict(self)
        values["teacher"] = str(self.teacher)
        values["unlabelled_files"] = [str(p) for p in self.unlabelled_files]
        values["keep_layers"] = list(self.keep_layers) if self.keep_layers is not None else None
        return values


# ----------------------------------------------------------------------------------------- student


def default_keep_layers(total: int, keep: int) -> list[int]:
    """``keep`` of ``total`` layers, evenly spaced, the last one included (a default to be measured).

    >>> default_keep_layers(6, 2), default_keep_layers(6, 3), default_keep_layers(12, 3)
    ([2, 5], [1, 3, 5], [3, 7, 11])
    """
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def encoder_layer_list(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """The dotted name and the ``ModuleList`` of the encoder's transformer layers.

    Raises:
        ConfigError: No list of ``num_hidden_layers`` layers is found (an unsupported architecture).
    """
    total = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.ModuleList) and len(module) == total
                and name.rsplit(".", 1)[-1] in _LAYER_LISTS):
            return name, module
    raise ConfigError(f"cannot find the {total} transformer layers of this {type(model).__name__}; pass "
                      "--student_model a smaller encoder instead of dropping layers")


def keep_layers(model: torch.nn.Module, layers: Sequence[int]) -> torch.nn.Module:
    """Keep only ``layers`` (0-based, in order) of ``model``'s encoder, in place; the kept layers' weights,
    the embeddings and the head are unchanged. Returns ``model``.

    Raises:
        ConfigError: A layer out of range, repeated or out of order, or none kept.
    """
    name, module_list = encoder_layer_list(model)
    total = len(module_list)
    layers = list(layers)
    if not layers or any(not 0 <= i < total for i in layers) or sorted(set(layers)) != layers:
        raise ConfigError(f"--keep_layers {','.join(map(str, layers))}: expected increasing layer numbers "
                          f"between 0 and {total - 1} (the teacher has {total} layers)")
    kept = torch.nn.ModuleList([module_list[i] for i in layers])
    for new_index, layer in enumerate(kept):
        for sub in layer.modules():
            if hasattr(sub, "layer_idx"):  # caches are indexed by position in the new stack
                sub.layer_idx = new_index
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, kept)
    model.config.num_hidden_layers = len(layers)
    return model


# ----------------------------------------------------------------------------------------- teacher


def read_unlabelled(paths: Sequence[Path], fmt: str = "auto", text_field: str = "text",
                    limit: int | None = None) -> list[Example]:
    """The documents of ``paths`` (any input ``tagtune predict`` reads) as untagged examples; raw text is
    split into words as ``tagtune predict`` splits it (:func:`tagtune.predict.pretokenize`)."""
    from tagtune.predict import pretokenize
    from tagtune.predict_io import iter_documents, resolve_input_format

    examples: list[Example] = []
    for path in paths:
        kind = resolve_input_format(Path(path), fmt, text_field)  # type: ignore[arg-type]
        for number, document in enumerate(iter_documents(Path(path), kind, text_field=text_field), start=1):
            if limit is not None and len(examples) >= limit:
                return examples
            if document.words is not None:
                words = tuple(document.words)
            else:
                text = document.text or ""
                words = tuple(text[s:e] for s, e in pretokenize(text))
            if words:
                examples.append(Example(words, None, doc=document.document,
                                        origin=document.origin or f"{path} document #{number}"))
    return examples


def teacher_scores(teacher: Checkpoint, examples: Sequence[Example], *, device: str | torch.device = "cpu",
                   name: str = "data") -> list[np.ndarray]:
    """The teacher's per-word log-probabilities ``[words, labels]`` of every example (teacher label order),
    from the disk cache when the same teacher tagged the same examples before."""
    from tagtune.inference import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, iter_word_scores

    aligner = teacher.aligner()
    path = default_cache_dir() / "teacher" / f"{_teacher_key(teacher, aligner, examples)}.npz"
    use_cache = os.environ.get("TAGTUNE_NO_CACHE") != "1"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                flat, offsets = data["scores"], data["offsets"]
            logger.info("%s: teacher scores of %d sentences loaded from %s", name, len(examples), path)
            return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable teacher cache %s (%s)", path, error)
    start = time.perf_counter()
    encoding = encode_cached(aligner, examples, labelled=False, name=f"{name} (teacher)")
    scores: list[np.ndarray | None] = [None] * len(examples)
    for index, log_probs in iter_word_scores(teacher.forward(), encoding, len(teacher.labels), pad_id=aligner.pad_id,
                                             batch_size=DEFAULT_BATCH_SIZE, max_tokens=DEFAULT_MAX_TOKENS,
                                             device=device):
        scores[index] = log_probs.astype(np.float32)
    done: list[np.ndarray] = scores  # type: ignore[assignment]  # iter_word_scores yields every example
    logger.info("%s: the teacher tagged %d sentences in %.1f s", name, len(examples), time.perf_counter() - start)
    if use_cache:
        offsets = np.zeros(len(done) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in done], out=offsets[1:])
        flat = np.concatenate(done) if done else np.zeros((0, len(teacher.labels)), dtype=np.float32)
        try:
            with atomic_open(path, "wb") as handle:
                np.savez(handle, scores=flat, offsets=offsets)
        except OSError as error:
            logger.warning("could not write the teacher cache %s (%s)", path, error)
    return done


def _teacher_key(teacher: Checkpoint, aligner, examples: Sequence[Example]) -> str:
    """Changes with the teacher's files (path, size, time), its windows and the examples."""
    digest = hashlib.sha256(f"teacher-v{CACHE_VERSION}|{Path(teacher.path).resolve()}|".encode())
    for file in sorted(Path(teacher.path).glob("*.safetensors")) + [Path(teacher.path) / "config.json"]:
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}|".encode())
    digest.update(fingerprint(aligner, examples, labelled=False).encode())
    return digest.hexdigest()[:32]


def label_order(teacher_labels: Sequence[str], student_labels: Sequence[str]) -> list[int]:
    """For each student label, its column in the teacher's scores.

    Raises:
        ConfigError: The student has a label the teacher never predicts.
    """
    unknown = [label for label in student_labels if label not in teacher_labels]
    if unknown:
        raise ConfigError(f"the teacher does not know the label(s) {', '.join(unknown)} of the training data "
                          f"(its labels: {', '.join(teacher_labels)}); distil on data tagged with the teacher's labels")
    missing = [label for label in teacher_labels if label not in student_labels]
    if missing:
        logger.warning("the student has no label %s: the teacher's probabilities are renormalised over the "
                       "student's labels", ", ".join(missing))
    return [list(teacher_labels).index(label) for label in student_labels]


def soft_target_table(scores: Sequence[np.ndarray], order: Sequence[int]) -> tuple[torch.Tensor, np.ndarray]:
    """One ``[words, student labels]`` table of teacher log-probabilities and each example's first row."""
    offsets = np.zeros(len(scores) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in scores], out=offsets[1:])
    flat = np.concatenate(scores) if scores else np.zeros((0, len(order)), dtype=np.float32)
    table = torch.from_numpy(np.ascontiguousarray(flat[:, list(order)]))
    table = table - torch.logsumexp(table, dim=-1, keepdim=True)  # renormalised when labels were dropped
    return table, offsets


def window_rows(encoding: Encoding, offsets: np.ndarray) -> list[dict[str, list[int]]]:
    """Training rows: ids, gold labels (``-100`` where none) and each position's teacher row (``-1``)."""
    rows = []
    for window, (ids, words) in enumerate(zip(encoding.input_ids, encoding.word_index, strict=True)):
        base = int(offsets[encoding.example_index[window]])
        labels = encoding.labels[window] if encoding.labels is not None else [IGNORE_INDEX] * len(ids)
        rows.append({"input_ids": ids, "labels": labels, "targets": [base + w if w >= 0 else -1 for w in words]})
    return rows


# ------------------------------------------------------------------------------------------- loss


def distill_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, table: torch.Tensor, *,
                 temperature: float, soft_weight: float, crf=None) -> tuple[torch.Tensor, dict[str, float]]:
    """The distillation loss of a batch and its parts.

    Args:
        logits: ``[B, T, L]`` student scores.
        labels: ``[B, T]`` gold label ids, ``-100`` where there is no gold.
        targets: ``[B, T]`` rows of ``table`` (the teacher's word at that position), ``-1`` for none.
        table: ``[N, L]`` teacher log-probabilities (student label order).
        crf: The student's CRF (:class:`tagtune.crf.CRF`): its NLL is the gold loss.

    Returns:
        ``(loss, {"soft": ..., "gold": ...})``; ``gold`` is absent for a batch without gold tags.
    """
    logits = logits.float()
    where = targets >= 0
    if where.any():
        student = F.log_softmax(logits[where] / temperature, dim=-1)
        teacher = F.log_softmax(table[targets[where]].float() / temperature, dim=-1)
        soft = F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature ** 2
    else:
        soft = logits.sum() * 0.0
    parts = {"soft": float(soft.detach())}
    if not (labels != IGNORE_INDEX).any():
        return soft_weight * soft, parts
    if crf is not None:
        from tagtune.crf import gather_words

        gold = crf.loss(*gather_words(logits, labels))
    else:
        gold = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    parts["gold"] = float(gold.detach())
    return soft_weight * soft + (1 - soft_weight) * gold, parts


def collate(rows: Sequence[Mapping[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch of :func:`window_rows` rows on the right."""
    from tagtune.inference import pad_batch

    ids, mask = pad_batch([r["input_ids"] for r in rows], pad_id)
    labels = torch.full(ids.shape, IGNORE_INDEX, dtype=torch.long)
    targets = torch.full(ids.shape, -1, dtype=torch.long)
    for i, row in enumerate(rows):
        labels[i, :len(row["labels"])] = torch.tensor(row["labels"], dtype=torch.long)
        targets[i, :len(row["targets"])] = torch.tensor(row["targets"], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "targets": targets}


def distill_steps(model: torch.nn.Module, loader, sampler, table: torch.Tensor, optimizer, scheduler,
                  settings: DistillConfig, *, max_steps: int, num_epochs: int, accumulation: int = 1,
                  max_grad_norm: float = 0.0, device: torch.device | str = "cpu",
                  autocast_dtype: torch.dtype | None = None) -> Iterator[tuple[Step, dict[str, float]]]:
    """Train and yield after every optimizer step (as the loop's ``train_steps``) with the step's mean
    soft and gold losses; the caller logs, evaluates and stops."""
    crf = getattr(model, "crf", None)
    device = torch.device(device)
    completed = 0
    model.train()
    for epoch in range(num_epochs):
        sampler.set_epoch(epoch)
        losses, soft, gold, samples, tokens, padded = [], [], [], 0, 0, 0
        for batch_index, batch in enumerate(loader, start=1):
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss, parts = distill_loss(logits, batch["labels"], batch["targets"], table,
                                       temperature=settings.temperature, soft_weight=settings.soft_weight, crf=crf)
            (loss / accumulation).backward()
            losses.append(float(loss.detach()))
            soft.append(parts["soft"])
            gold += [parts["gold"]] if "gold" in parts else []
            samples += batch["input_ids"].shape[0]
            tokens += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
            end_of_epoch = batch_index == len(loader)
            if len(losses) < accumulation and not end_of_epoch:
                continue
            if max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            completed += 1
            step = Step(completed_steps=completed, epoch=epoch, batch=batch_index, batches_in_epoch=len(loader),
                        end_of_epoch=end_of_epoch or completed >= max_steps, loss=sum(losses) / len(losses),
                        learning_rate=scheduler.get_last_lr()[0], samples=samples, tokens=tokens, padded_tokens=padded)
            yield step, {"soft": sum(soft) / len(soft), **({"gold": sum(gold) / len(gold)} if gold else {})}
            losses, soft, gold, samples, tokens, padded = [], [], [], 0, 0, 0
            if completed >= max_steps:
                return


# ------------------------------------------------------------------------------------------- run


def student_flag_values(settings: DistillConfig, given: Collection[str] = ()) -> dict[str, Any]:
    """``run_ner_no_trainer.py`` flag values for the student from the teacher's saved settings: its
    windows, decoding, task and CRF, and its data files when no data flag is ``given`` (and they exist)."""
    saved = load_run_config(Path(settings.teacher)) or {}
    align, evaluation, data, model = (saved.get(k, {}) for k in ("align", "eval", "data", "model"))
    values: dict[str, Any] = {"model_name_or_path": settings.student_model or str(settings.teacher),
                              "crf": bool(model.get("crf")) or (Path(settings.teacher) / CRF_FILE).is_file(),
                              "per_device_train_batch_size": 32}
    for flag, value in (("max_seq_length", align.get("max_length")), ("stride", align.get("stride")),
                        ("context_size", align.get("context_size")), ("decoding", evaluation.get("decoding")),
                        ("task_name", data.get("task_name"))):
        if value is not None:
            values[flag] = value
    if not set(given) & {"train_file", "validation_file", "test_file", "dataset_name"}:
        for split in ("train_file", "validation_file", "test_file"):
            if data.get(split) and Path(data[split]).is_file():
                values[split] = data[split]
    return values


def student_run_config(settings: DistillConfig, **flags: Any) -> RunConfig:
    """The student's :class:`RunConfig` from ``run_ner_no_trainer.py`` flag values (``output_dir=...``,
    ``train_file=...``, ``max_train_seconds=...``) over :func:`student_flag_values`, checked and built by
    :func:`tagtune.flags.run_config` as for any run."""
    from tagtune.flags import FLAGS, LOOP, run_config

    values = {flag.name: flag.default for flag in FLAGS if LOOP in flag.engines}
    values.update(student_flag_values(settings, set(flags)))
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in flags.items()})
    return run_config(values, LOOP)


def distill(config: RunConfig, settings: DistillConfig) -> dict[str, float]:
    """Distil ``settings.teacher`` into a student trained as ``config`` says (``config.loop`` set; its
    model is the teacher, or the ``student_model``) and save it into ``config.loop.output_dir``.

    Returns:
        ``all_results`` (train, eval and predict metrics; also written to ``all_results.json``).

    Raises:
        ConfigError: Contradictory settings, labels the teacher does not know, nothing left to drop.
        ModelLoadError: The teacher is not a fine-tuned model directory.
    """
    from transformers import set_seed

    cfg = config.loop
    if cfg is None:
        raise ConfigError("distillation needs the loop's settings (RunConfig.loop); build it with student_run_config")
    if cfg.mixed_precision == "fp16":
        raise ConfigError("--mixed_precision fp16 is not supported for distillation; use bf16")
    seed = cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(4), "little") % 2**31
    set_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.cpu else "cpu")
    teacher = load_checkpoint(settings.teacher, device=str(device))  # a tagger with named labels, first
    needs = {"train": Need("distillation trains on the teacher's training data: pass --train_file", "training"),
             "validation": Need(None, "evaluation (--validation_file)"), "test": Need(None, "scoring the test split")}
    run = prepare(config, needs, output_dir=cfg.output_dir, overwrite=cfg.overwrite_output_dir, resuming=False)
    kept = _make_student(run, settings)
    order = label_order(teacher.labels, run.labels)
    crf = getattr(run.model, "crf", None)
    if crf is not None and teacher.transitions is not None and list(teacher.labels) == run.labels:
        with torch.no_grad():  # a CRF student starts from the teacher's transitions (see the module's doc)
            crf.transitions.copy_(torch.from_numpy(teacher.transitions))
    run.model.to(device)
    teacher_labels, teacher_layers = list(teacher.labels), getattr(teacher.model.config, "num_hidden_layers", None)

    unlabelled = read_unlabelled(settings.unlabelled_files, settings.unlabelled_format, settings.text_field,
                                 settings.max_unlabelled_samples)
    began = time.perf_counter()
    scores = teacher_scores(teacher, run.splits["train"], device=device, name="train")
    scores += teacher_scores(teacher, unlabelled, device=device, name="unlabelled") if unlabelled else []
    teacher_seconds = time.perf_counter() - began
    del teacher
    table, offsets = soft_target_table(scores, order)
    rows = window_rows(run.train, offsets)
    if unlabelled:
        extra = encode_cached(run.aligner, unlabelled, labelled=False, overwrite=config.data.overwrite_cache,
                              name="unlabelled")
        rows += window_rows(extra, offsets[len(run.splits["train"]):])

    history: list[dict[str, float]] = []
    results, last = _train(run, rows, table.to(device), settings, seed, device, history)
    model = run.model
    results.update(teacher_seconds=round(teacher_seconds, 2), unlabelled_samples=len(unlabelled),
                   unlabelled_windows=len(rows) - len(run.train), student_layers=model.config.num_hidden_layers)
    evaluation = None
    if run.splits.get("validation"):  # the last epoch's evaluation, unless training stopped mid-epoch
        evaluation, eval_metrics = last or evaluate(run, model, "validation", "eval")
        results.update(eval_metrics)
    test_result = None
    if run.splits.get("test"):
        test_result, metrics = evaluate(run, model, "test", "predict", description="predicting")
        results.update(metrics)

    record = {**settings.public(), "teacher_labels": teacher_labels, "teacher_layers": teacher_layers,
              "labels": list(run.labels), "kept_layers": kept, "seed": seed, "student_layers": model.config.num_hidden_layers,
              "train_sentences": len(run.splits["train"]), "unlabelled_sentences": len(unlabelled),
              "loss": "soft_weight * T^2 * KL(teacher_T || student_T) + (1 - soft_weight) * gold"}

    def save_model(staging: Path) -> None:
        model.save_pretrained(staging)
        atomic_write_json(staging / DISTILL_FILE, record)

    finish(run, cfg.output_dir, results, evaluation=evaluation, test_result=test_result, history=history,
           training={**asdict(cfg), **{f"distill_{k}": v for k, v in settings.public().items()}},
           card_settings=SimpleNamespace(**asdict(cfg), bf16=cfg.mixed_precision == "bf16", fp16=False),
           save_model=save_model)
    _add_card_section(cfg.output_dir, record)
    return results


def _make_student(run: Run, settings: DistillConfig) -> list[int] | None:
    """Drop the teacher's layers the student does not keep (nothing for a ``student_model``)."""
    if settings.student_model:
        return None
    model = run.model
    total = model.config.num_hidden_layers
    count = len(settings.keep_layers) if settings.keep_layers else settings.student_layers or DEFAULT_STUDENT_LAYERS
    if count >= total and not settings.keep_layers:
        raise ConfigError(f"the teacher has {total} layers: a student of {count} keeps them all; pass "
                          f"--student_layers below {total}")
    layers = list(settings.keep_layers) if settings.keep_layers else default_keep_layers(total, count)
    keep_layers(model, layers)  # a CRF model: its encoder's layers (found through the wrapper)
    logger.info("student: layers %s of the teacher's %d", ", ".join(map(str, layers)), total)
    return layers


def _train(run: Run, rows: list[dict], table: torch.Tensor, settings: DistillConfig, seed: int, device: torch.device,
           history: list[dict[str, float]]) -> tuple[dict[str, float], tuple | None]:
    """The optimisation: token-budget batches, AdamW, linear schedule (or one that decays with time).

    Returns:
        The ``train_*`` results and the last validation ``(result, metrics)`` when it saw the last step.
    """
    from tagtune.batching import train_batches
    from tagtune.loop_tools import make_scheduler
    from tagtune.progress import progress_bar
    from tagtune.train import TrainClock

    cfg, model = run.config.loop, run.model
    assert cfg is not None
    batching = train_batches([len(r["input_ids"]) for r in rows], cfg.max_tokens_per_batch,
                             cfg.train_sampling_strategy, cfg.per_device_train_batch_size, seed)
    sampler = batching.get("batch_sampler") or batching["sampler"]
    loader = torch.utils.data.DataLoader(rows, collate_fn=lambda b: collate(b, run.aligner.pad_id), **batching)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.learning_rate)
    max_steps, num_epochs = cfg.total_steps(len(loader))
    budget = TrainClock(cfg.max_train_seconds) if cfg.max_train_seconds else None
    scheduler = make_scheduler(optimizer, cfg, max_steps, budget)
    logger.info("distilling: %d windows (%d labelled), %d batches an epoch, %d steps over %d epoch(s), T=%g, "
                "soft weight %g, on %s", len(rows), len(run.train), len(loader), max_steps, num_epochs,
                settings.temperature, settings.soft_weight, device)
    clock = Clock()  # training time only: evaluating is excluded
    meter = Meter(clock)
    losses: list[float] = []
    soft: list[float] = []
    gold: list[float] = []
    evaluation = None
    if budget:
        budget.start = time.perf_counter()
    steps = distill_steps(model, loader, sampler, table, optimizer, scheduler, settings, max_steps=max_steps,
                          num_epochs=num_epochs, accumulation=cfg.gradient_accumulation_steps,
                          max_grad_norm=cfg.max_grad_norm, device=device,
                          autocast_dtype=torch.bfloat16 if cfg.mixed_precision == "bf16" else None)
    with progress_bar(total=max_steps, desc="distilling", unit="step") as bar:
        for step, parts in steps:
            bar.update(1)
            meter.add(step)
            losses.append(step.loss)
            soft.append(parts["soft"])
            gold += [parts["gold"]] if "gold" in parts else []
            if step.completed_steps % cfg.logging_steps == 0 or step.end_of_epoch:
                logs = meter.flush(step)
                history.append({"step": step.completed_steps, "loss": logs["train_loss"],
                                "learning_rate": logs["learning_rate"], "epoch": round(logs["epoch"], 4)})
            evaluation = None  # an evaluation stands for the model only until the next step
            if step.end_of_epoch and run.splits.get("validation"):
                with clock.paused():
                    evaluation = evaluate(run, model, "validation", "eval")
                history.append({"step": step.completed_steps, **evaluation[1]})
                logger.info("epoch %d: %s", step.epoch, {k: round(v, 4) for k, v in evaluation[1].items()})
            if budget and budget.elapsed() >= budget.budget:
                break
    runtime = clock.seconds()
    results = {"train_loss": round(float(np.mean(losses)), 6) if losses else 0.0,
               "train_soft_loss": round(float(np.mean(soft)), 6) if soft else 0.0,
               "train_steps": len(losses), "train_runtime": round(runtime, 4),
               "train_samples": len(run.splits["train"]), "train_windows": len(rows),
               "train_samples_per_second": round(meter.total_samples / max(runtime, 1e-9), 3),
               "train_real_tokens_per_second": round(meter.total_tokens / max(runtime, 1e-9), 1)}
    if gold:
        results["train_gold_loss"] = round(float(np.mean(gold)), 6)
    return results, evaluation


def _add_card_section(output_dir: Path, record: Mapping[str, Any]) -> None:
    """A "Distillation" section in the model card: the teacher, the student's layers, the loss, the data."""
    card = Path(output_dir) / "README.md"
    if not card.is_file():
        return
    student = (f"keeps the teacher's layers {', '.join(map(str, record['kept_layers']))} (of {record['teacher_layers']})"
               if record["kept_layers"] is not None else f"is `{record['student_model']}`")
    unlabelled = (f" and {record['unlabelled_sentences']} unlabelled documents tagged by the teacher "
                  f"({', '.join(Path(p).name for p in record['unlabelled_files'])})" if record["unlabelled_sentences"] else "")
    atomic_write_text(card, card.read_text(encoding="utf-8") + f"""
## Distillation
Distilled by tagtune from the teacher `{record['teacher']}`. The student {student}.

Loss: {record['soft_weight']} x T² x KL(teacher || student) at temperature T = {record['temperature']}, plus
{1 - record['soft_weight']:g} x the gold loss where gold tags exist; on {record['train_sentences']} training
sentences{unlabelled}. All settings are in `{DISTILL_FILE}`.
""")

