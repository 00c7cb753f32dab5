"""The library's exceptions: one root, so callers can catch everything this package raises on purpose."""

from __future__ import annotations


class EchoEmbeddingsError(Exception):
    """Root of the errors this package raises about its inputs, settings, files and models."""


class ConfigError(EchoEmbeddingsError, ValueError):
    """A setting has a bad value; the message names the setting."""


class InputError(EchoEmbeddingsError, ValueError):
    """A problem with an input or output file, located as ``file:line`` where it has one."""


class ModelError(EchoEmbeddingsError, OSError):
    """A model cannot be loaded, or is not a causal language model; the message names it and what is missing."""


class TrainingDataError(EchoEmbeddingsError, ValueError):
    """A training row is unusable; the message names the file and line (or row)."""


class TrainingError(EchoEmbeddingsError, RuntimeError):
    """Training went wrong at run time (a loss that is not a finite number); nothing was saved."""


class TextTooLongError(EchoEmbeddingsError, ValueError):
    """A text is longer than the encoder reads and ``truncation="error"``; the message names its index and length.

    ``index`` is the text's index in the list checked, ``tokens`` its length and ``limit`` what the encoder reads.
    """

    def __init__(self, message: str, *, index: int, tokens: int, limit: int) -> None:
        super().__init__(message)
        self.index, self.tokens, self.limit = index, tokens, limit


class MissingDependencyError(EchoEmbeddingsError, ImportError):
    """An optional dependency is not installed; the message says how to install it: the extra (``extra``), or for
    a package no extra brings (``extra`` None), the package."""

    def __init__(self, message: str, *, extra: str | None) -> None:
        super().__init__(message)
        self.extra = extra
