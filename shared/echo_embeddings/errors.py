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
