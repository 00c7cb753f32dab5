"""Fine-tuning echo models with the paper's contrastive recipe (``train``, ``echo-embeddings train``), and
distilling a fine-tuned echo model into a one-copy student (``distill``, ``echo-embeddings distill``).

Needs ``pip install "echo-embeddings[train]"`` (sentence-transformers, peft, datasets). Importing the package is
cheap: [TrainingConfig][] needs pydantic only, and the rest loads with the first name that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..extras import TRAIN_MODULES, import_extra, require
from .config import TrainingConfig

if TYPE_CHECKING:
    from .data import TrainingRow, read_training_rows
    from .distill import distill
    from .recipe import recipe_rows
    from .trainer import train

_LAZY = {
    "TrainingRow": "data",
    "read_training_rows": "data",
    "distill": "distill",
    "recipe_rows": "recipe",
    "train": "trainer",
}

__all__ = ["TrainingConfig", "TrainingRow", "distill", "read_training_rows", "recipe_rows", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        require(TRAIN_MODULES, "train")  # all of them, before anything reads rows, loads a model or makes a folder
        value = getattr(import_extra(f"{__name__}.{_LAZY[name]}", "train"), name)
        globals()[name] = value  # importing the submodule ``distill`` bound its name to the module: rebind it
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
