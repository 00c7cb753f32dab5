"""Pooling token states over a mask into one vector per input, accumulated in fp32."""

from __future__ import annotations

from typing import Literal

import torch

PoolingMethod = Literal["mean", "last"]
POOLING_METHODS: tuple[str, ...] = ("mean", "last")


def pool(hidden: torch.Tensor, mask: torch.Tensor, method: PoolingMethod) -> torch.Tensor:
    """Pool ``hidden`` (batch, seq, dim) over the True positions of ``mask`` (batch, seq); fp32 out.

    ``mean`` averages the masked states (the paper's zero-shot choice); ``last`` takes the last masked state (for the
    fine-tuned last-token checkpoints). Every row must have at least one masked position.
    """
    if method == "mean":
        weights = mask.to(torch.float32).unsqueeze(-1)
        return (hidden.to(torch.float32) * weights).sum(dim=1) / weights.sum(dim=1)
    if method == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = torch.where(mask, positions, -1).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].to(torch.float32)
    raise ValueError(f"unknown pooling {method!r}: use one of {', '.join(POOLING_METHODS)}")
