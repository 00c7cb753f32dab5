"""Echo embeddings: text embeddings from any causal language model, with no training.

Springer et al., "Repetition Improves Language Model Embeddings" (arXiv 2402.15449): put the text in the prompt
twice and mean-pool the hidden states of the second copy, whose tokens have seen the whole text.
"""

from .encoder import EchoEncoder, TruncationWarning
from .models import DEFAULT_MODEL, load_model
from .templates import TEMPLATES, Pattern, Template

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "TEMPLATES",
    "EchoEncoder",
    "Pattern",
    "Template",
    "TruncationWarning",
    "__version__",
    "load_model",
]
