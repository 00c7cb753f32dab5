"""Echo embeddings: text embeddings from any causal language model, zero-shot or fine-tuned.

Springer et al., "Repetition Improves Language Model Embeddings" (arXiv 2402.15449): put the text in the prompt
twice and pool the hidden states of the second copy, whose tokens have seen the whole text.

Importing the package is cheap; torch and transformers load with the first name that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .instructions import GENERAL_INSTRUCTION, INSTRUCTIONS
from .shipped import BASE_MODEL, DEFAULT_MODEL
from .templates import TEMPLATES, Pattern, Template

if TYPE_CHECKING:
    from .config import EchoConfig
    from .encoder import EchoEncoder, EncodeStats
    from .errors import (
        ConfigError,
        EchoEmbeddingsError,
        InputError,
        MissingDependencyError,
        ModelError,
        TextTooLongError,
        TrainingDataError,
        TrainingError,
    )
    from .loading import cpu_multiplies_bfloat16, load_model
    from .ray_data import embed_dataset
    from .st import load_sentence_transformer, sentence_transformer
    from .tokenization import TruncationWarning

__version__ = "0.2.0"

ERRORS = (
    "EchoEmbeddingsError", "ConfigError", "InputError", "ModelError", "TextTooLongError", "TrainingDataError",
    "TrainingError", "MissingDependencyError",
)  # fmt: skip
"""The library's exceptions (``echo_embeddings.errors``), one tree under ``EchoEmbeddingsError``."""

_LAZY = {
    **dict.fromkeys(ERRORS, "errors"),
    "EchoConfig": "config",
    "EchoEncoder": "encoder",
    "EncodeStats": "encoder",
    "embed_dataset": "ray_data",
    "TruncationWarning": "tokenization",
    "load_model": "loading",
    "cpu_multiplies_bfloat16": "loading",
    "sentence_transformer": "st",
    "load_sentence_transformer": "st",
}

__all__ = [
    "BASE_MODEL",
    "DEFAULT_MODEL",
    "GENERAL_INSTRUCTION",
    "INSTRUCTIONS",
    "TEMPLATES",
    "ConfigError",
    "EchoConfig",
    "EchoEmbeddingsError",
    "EchoEncoder",
    "EncodeStats",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "Pattern",
    "Template",
    "TextTooLongError",
    "TrainingDataError",
    "TrainingError",
    "TruncationWarning",
    "cpu_multiplies_bfloat16",
    "embed_dataset",
    "load_model",
    "load_sentence_transformer",
    "sentence_transformer",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from .extras import import_extra

        return getattr(import_extra(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
