"""Optional dependencies: which extra installs each, and one error that says so.

The core needs torch, transformers and numpy; every framework, the server, training, Ray and the evaluation plots
come with an extra. A missing one raises
[MissingDependencyError][echo_embeddings.errors.MissingDependencyError] naming the
``pip install "echo-embeddings[EXTRA]"`` that brings it, wherever it is first imported. No torch here.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

EXTRAS = {
    "sentence_transformers": "st",
    "fastapi": "server",
    "uvicorn": "server",
    "prometheus_client": "server",
    "orjson": "server",
    "peft": "train",
    "datasets": "train",
    "ray": "ray",
    "pyarrow": "eval",
    "matplotlib": "eval",
    "sklearn": "eval",
    "langchain_core": "langchain",
    "llama_index": "llamaindex",
}
"""Top-level module -> the extra that installs it."""

TRAIN_MODULES = ("sentence_transformers", "peft", "datasets", "pyarrow")
"""What the ``train`` extra installs, which fine-tuning and distillation check for before any work."""

PACKAGES = {"sklearn": "scikit-learn", "llama_index": "llama-index-core", "langchain_core": "langchain-core"}
"""Top-level module -> its distribution's name, where the two differ by more than - and _."""


def missing_dependency(error: ModuleNotFoundError, extra: str | None = None) -> MissingDependencyError | None:
    """The error to raise for ``error`` when the missing module comes with an extra (``extra`` when given: the
    feature's own, e.g. ``train`` for sentence-transformers in training), else None."""
    top = (error.name or "").split(".")[0]
    if top not in EXTRAS:
        return None
    package, extra = PACKAGES.get(top, top.replace("_", "-")), extra or EXTRAS[top]
    return MissingDependencyError(
        f'{package} is not installed; it comes with pip install "echo-embeddings[{extra}]"', extra=extra
    )


def require(modules: tuple[str, ...], extra: str) -> None:
    """A [MissingDependencyError][echo_embeddings.errors.MissingDependencyError] naming ``extra`` unless every
    top-level module of ``modules`` is installed; imports nothing, so a feature checks all it needs before it
    reads data, loads a model or creates a folder."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise missing_dependency(ModuleNotFoundError(name=module), extra) or ModuleNotFoundError(name=module)


def import_extra(module: str, extra: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, a missing optional dependency reported as [missing_dependency][]
    (naming ``extra`` when given)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise (missing_dependency(error, extra) or error) from None
