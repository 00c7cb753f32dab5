"""Whether a model is causal (decoder-only) and runs with its causal mask, and removing that mask for the
bidirectional baseline: the checks every loaded model passes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .errors import ModelError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


def check_causal(model: PreTrainedModel, name: str) -> None:
    """A [ModelError][] unless ``model`` is a causal (decoder-only) LM: the states of a sequence's first tokens
    must not change when a later token does. One forward pass of two 3-token sequences."""
    kind = type(model).__name__
    if getattr(model.config, "is_encoder_decoder", False):
        raise ModelError(f"{name} is a {kind}, an encoder-decoder model, not a causal (decoder-only) language model")
    if _sees_later_tokens(model):
        raise ModelError(f"{name} is a {kind}, not a causal (decoder-only) language model: its states see later tokens")


def remove_causal_mask(model: PreTrainedModel, name: str) -> None:
    """Let every token of ``model`` attend to the whole input (the attention modules and the mask it builds honour
    ``is_causal``), or raise a [ModelError][] if its states still cannot see later tokens."""
    model.config.is_causal = False
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False  # type: ignore[assignment]  # a plain attribute of attention modules
    if not _sees_later_tokens(model):
        raise ModelError(
            f"{name} ({type(model).__name__}) keeps its causal mask: attention='bidirectional' needs a model whose "
            "attention honours config.is_causal (Llama, Mistral, Qwen2, Gemma, ...)"
        )


def is_causal(model: PreTrainedModel | PeftModel) -> bool:
    """Whether ``model`` runs with its causal mask (see [remove_causal_mask][])."""
    return getattr(model.config, "is_causal", True) is not False


def _sees_later_tokens(model: PreTrainedModel) -> bool:
    """Whether the states of a sequence's first tokens change when a later token does: two 3-token sequences."""
    vocab = int(getattr(model.config, "vocab_size", 8) or 8)
    ids = torch.tensor([[1 % vocab, 2 % vocab, 3 % vocab], [1 % vocab, 2 % vocab, 4 % vocab]], device=model.device)
    with torch.inference_mode():
        hidden = model(input_ids=ids).last_hidden_state.float()
    return not torch.allclose(hidden[0, :2], hidden[1, :2], atol=1e-3, rtol=1e-3)
