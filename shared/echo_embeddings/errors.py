"""The library's exceptions: one root, so callers can catch everything this package raises on purpose."""

from __future__ import annotations


class EchoEmbeddingsError(Exception):
    """Root of the errors this package raises about its inputs, settings, files and models."""


class ConfigError(EchoEmbeddingsError, ValueError):
    """A setting has a bad value; the message names the setting."""


class TrainingDataError(EchoEmbeddingsError, ValueError):
    """A training row is unusable; the message names the file and line (or row)."""
