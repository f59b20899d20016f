"""Errors tagtune raises for problems in the user's input, configuration or environment.

Library code raises these and never exits; the CLI prints ``str(error)`` on one line and exits 2.
A message says what is wrong, where (``file:line``, ``record #n`` or the option name), what was
expected versus found, and how to fix it.
"""

from __future__ import annotations


class TagtuneError(ValueError):
    """Base class of every error that is the user's to fix (bad data, flags, paths)."""


class DataFormatError(TagtuneError):
    """A data file cannot be read: wrong format, missing columns, bad encoding, empty file."""


class LabelSchemeError(TagtuneError):
    """Tags are unknown, unnamed, or break the tagging scheme (IOB1/IOB2/BIOES)."""


class AlignmentError(TagtuneError):
    """Words cannot be mapped to sub-tokens (for example a slow tokenizer without word ids)."""


class ConfigError(TagtuneError):
    """A flag, option or configuration value is invalid."""


class ModelLoadError(TagtuneError):
    """A model directory or name cannot be loaded safely (missing, pickled weights, remote code)."""


class ExportError(TagtuneError):
    """An export (ONNX) failed or does not match the PyTorch model."""


class OutputDirError(TagtuneError):
    """The output directory exists and is not empty, and overwriting was not asked for."""
