"""Length-sorted, token-budgeted batches: little padding, bounded memory, input order restored by the caller."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .tokenization import ModelInput


def plan_batches(lengths: Sequence[int], max_texts: int, max_tokens: int) -> list[list[int]]:
    """Group indices into batches, longest first.

    A batch holds at most ``max_texts`` inputs and at most ``max_tokens`` tokens once padded to its longest input
    (a single input longer than ``max_tokens`` still gets a batch of its own). Longest first, so a batch that does
    not fit in memory fails at once rather than at the end.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) >= max_texts or (len(current) + 1) * lengths[current[0]] > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def collate(items: Sequence[ModelInput], pad_id: int, skip: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask``, and ``pool_mask`` marking each pooled span.

    ``skip`` leaves out the first tokens of every input (a shared prefix computed separately); the pooled spans
    must lie after them.
    """
    width = max(len(item.input_ids) for item in items) - skip
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    pool_mask = torch.zeros((len(items), width), dtype=torch.bool)
    for row, item in enumerate(items):
        n = len(item.input_ids) - skip
        input_ids[row, :n] = torch.tensor(item.input_ids[skip:], dtype=torch.long)
        attention_mask[row, :n] = 1
        pool_mask[row, item.pool_start - skip : item.pool_end - skip] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "pool_mask": pool_mask}
