"""Pooling token states into one vector per input, accumulated in fp32."""

from __future__ import annotations

from typing import get_args

import torch

from .templates import PoolingName


def pool(
    hidden: torch.Tensor, pool_mask: torch.Tensor, attention_mask: torch.Tensor, method: PoolingName
) -> torch.Tensor:
    """Pool ``hidden`` (batch, seq, dim) into (batch, dim) fp32 vectors.

    ``mean`` averages the states where ``pool_mask`` is True (the template's pooled span; the paper's zero-shot
    choice). ``last`` takes the state of each input's final token (the last True of ``attention_mask``, right
    padding), which is what last-token models (echo's -lasttoken checkpoint, PromptEOL) read. ``mean-last``
    averages the pooled span and the final token together (each state counted once). ``mean+last`` adds the
    unit-length ``mean`` and the unit-length ``last``, so the span and the final token weigh the same whatever
    the span's length (an echo template that ends in a summary cue, such as the ``echo-categorize`` preset).
    """
    if method == "mean+last":
        mean = torch.nn.functional.normalize(pool(hidden, pool_mask, attention_mask, "mean"), dim=-1)
        return mean + torch.nn.functional.normalize(pool(hidden, pool_mask, attention_mask, "last"), dim=-1)
    last = attention_mask.sum(dim=1) - 1
    if method in ("mean", "mean-last"):
        if method == "mean-last":
            pool_mask = pool_mask.clone()
            pool_mask[torch.arange(hidden.shape[0], device=hidden.device), last] = True
        weights = pool_mask.to(torch.float32).unsqueeze(-1)
        return (hidden.to(torch.float32) * weights).sum(dim=1) / weights.sum(dim=1)
    if method == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].to(torch.float32)
    raise ValueError(f"unknown pooling {method!r}: use one of {', '.join(get_args(PoolingName))}")


def pool_spans(states: torch.Tensor, span_masks: torch.Tensor, last: int, method: PoolingName) -> torch.Tensor:
    """Pool one input's ``states`` (seq, dim) over each row of ``span_masks`` (spans, seq) into (spans, dim) fp32
    vectors, as [pool][] would pool copies of the input (``last`` is its final token), without making them: one
    matrix product, so memory grows with the spans' count times ``seq``, not times ``seq * dim``."""
    if method == "mean+last":
        mean = torch.nn.functional.normalize(pool_spans(states, span_masks, last, "mean"), dim=-1)
        return mean + torch.nn.functional.normalize(states[last].to(torch.float32), dim=-1)
    if method not in ("mean", "mean-last"):
        raise ValueError(f"pool_spans pools spans: use mean, mean-last or mean+last, not {method!r}")
    weights = span_masks.to(torch.float32)
    if method == "mean-last":
        weights[:, last] = 1.0
    return (weights @ states.to(torch.float32)) / weights.sum(dim=1, keepdim=True)
