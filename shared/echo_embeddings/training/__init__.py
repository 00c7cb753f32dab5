"""Fine-tuning echo models with the paper's contrastive recipe: ``train`` and the ``echo-embeddings train`` command.

Needs ``pip install "echo-embeddings[train]"`` (sentence-transformers, peft, datasets).
"""

from .config import TrainingConfig
from .data import TrainingRow, read_training_rows
from .recipe import recipe_rows
from .trainer import train

__all__ = ["TrainingConfig", "TrainingRow", "read_training_rows", "recipe_rows", "train"]
