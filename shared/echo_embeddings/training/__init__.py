"""Fine-tuning echo models with the paper's contrastive recipe (``train``, ``echo-embeddings train``), and
distilling a fine-tuned echo model into a one-copy student (``distill``, ``echo-embeddings distill``).

Needs ``pip install "echo-embeddings[train]"`` (sentence-transformers, peft, datasets).
"""

from .config import TrainingConfig
from .data import TrainingRow, read_training_rows
from .distill import distill
from .recipe import recipe_rows
from .trainer import train

__all__ = ["TrainingConfig", "TrainingRow", "distill", "read_training_rows", "recipe_rows", "train"]
