"""The in-memory form of labelled or unlabelled token-classification data.

Every reader produces :class:`Example` objects; everything downstream (labels, alignment, training,
metrics, prediction) consumes them. Tags are kept as *names* (``"B-PER"``), never as integer ids, so
that a label name can never be lost between reading and writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One sentence (or any sequence of words) with optional per-word tags.

    Attributes:
        tokens: The words, exactly as read.
        tags: One tag name per word, or ``None`` when the data carries no labels.
        doc: Identifier of the document the sentence belongs to (``None`` when unknown); sentences
            of one document are consecutive in a split.
        origin: Where the example came from, for error messages: ``"train.txt:412"`` or
            ``"train.json record #7"``.
        id: The example's id when the data has one (the upstream ``id`` column), else its index.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    doc: str | None = None
    origin: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        assert self.tags is None or len(self.tags) == len(self.tokens), "readers check lengths"


@dataclass
class Corpus:
    """The splits of one data set plus what is known of its label names.

    Attributes:
        splits: ``{"train": [...], "validation": [...], "test": [...]}``; any subset of those keys.
        label_names: Names in the order the data source defines them (ClassLabel names, a labels
            file); ``None`` when the tags were strings in the files, in which case the label list is
            built from the data by :func:`tagtune.labels.build_label_list`.
        format: The format that was read (``"conll"``, ``"conllu"``, ``"json"``, ``"jsonl"``, ``"csv"``,
            ``"hub"``).
        warnings: Recoverable problems found while reading (counted, shown in reports).
    """

    splits: dict[str, list[Example]]
    label_names: list[str] | None = None
    format: str = ""
    warnings: list[str] = field(default_factory=list)
