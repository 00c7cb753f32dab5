"""Collation: texts made into model inputs, as length-sorted padded batches or as packed passes.

Batches are length-sorted and token-budgeted: little padding, bounded memory, input order restored by the caller.

Packed passes lay the texts of a pass end to end in a few rows, each attending to the prefix and itself only.
A padded batch computes every text at its longest member's length. When the texts of a pass differ in length
(the server's passes take whatever concurrent requests sent, in arrival order) that wasted about a third of
each pass. Packing puts the texts of a pass into rows of about ``ROW_TOKENS`` tokens, restarts the positions at
each text and gives the attention a block-diagonal causal mask, so every text gets the states it would get
alone; only the rows' ends are padded. The cost is attention over a whole row instead of one text, a few percent
of a small model's pass at this row length.

Only for causal models whose attention takes such a mask as given (the families in ``PACKABLE_MODEL_TYPES``, with
eager or SDPA attention, and no sliding window shorter than the input); others keep padded batches.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .causality import is_causal
from .tokenization import ModelInput

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def plan_batches(
    lengths: Sequence[int], max_texts: int, max_tokens: int, *, alone_from: int | None = None
) -> list[list[int]]:
    """Group indices into batches, longest first.

    A batch holds at most ``max_texts`` inputs and at most ``max_tokens`` tokens once padded to its longest input
    (a single input longer than ``max_tokens`` still gets a batch of its own), and an input of at least
    ``alone_from`` tokens is alone. Longest first, so a batch that does not fit in memory fails at once rather than
    at the end.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            len(current) >= max_texts
            or (len(current) + 1) * lengths[current[0]] > max_tokens
            or (alone_from is not None and lengths[current[0]] >= alone_from)
        ):
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


ROW_TOKENS = 256
"""Tokens per packed row (a longer text gets a row of its own): enough to keep a pass's rows few and even, short
enough that attending across the row costs little next to the rest of the pass."""

PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"})
"""Model families whose attention applies a given 4-D mask and position ids unchanged (each checked against
padded batches in the tests)."""


def can_pack(model: PreTrainedModel, max_length: int | None) -> bool:
    """Whether ``model``'s passes can be packed: causal, a family in ``PACKABLE_MODEL_TYPES``, eager or SDPA
    attention, and any sliding window at least ``max_length`` long (the mask leaves it out; None: inputs of any
    length, which no window covers)."""
    config = model.config
    window = getattr(config, "sliding_window", None)
    return (
        is_causal(model)
        and config.model_type in PACKABLE_MODEL_TYPES
        and getattr(config, "_attn_implementation", None) in ("eager", "sdpa")
        and (window is None or (max_length is not None and window >= max_length))
    )


def plan_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Indices spread over ``ceil(total / row_tokens)`` rows, longest first, each to the shortest row so far, so
    the rows come out nearly even."""
    rows: list[list[int]] = [[] for _ in range(max(1, math.ceil(sum(lengths) / row_tokens)))]
    heap = [(0, r) for r in range(len(rows))]
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        filled, r = heapq.heappop(heap)
        rows[r].append(i)
        heapq.heappush(heap, (filled + lengths[i], r))
    return [row for row in rows if row]


def collate_packed(
    items: Sequence[ModelInput], pad_id: int, skip: int, dtype: torch.dtype, row_tokens: int = ROW_TOKENS
) -> dict[str, torch.Tensor]:
    """The model inputs of a packed pass, and what [unpack][] needs to give each text its own row again.

    ``skip`` leaves out the first tokens of every input (a shared prefix, computed separately, that every token
    may attend to); positions continue after it. ``attention_mask`` is additive, ``(rows, 1, width, skip +
    width)`` in ``dtype``. A text's token always attends to itself; a row's padding attends to the first key only,
    so no state is undefined and padding is told apart by the mask's diagonal (as the benchmarks' counter does).
    ``gather_index``, ``token_mask`` and ``pool_mask`` are ``(texts, longest text)``.
    """
    lengths = [len(item.input_ids) - skip for item in items]
    rows = plan_rows(lengths, row_tokens)
    width = max(sum(lengths[i] for i in row) for row in rows)
    longest = max(lengths)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)  # which text each position holds; -1: padding
    gather_index = torch.zeros((len(items), longest), dtype=torch.long)
    token_mask = torch.zeros((len(items), longest), dtype=torch.long)
    pool_mask = torch.zeros((len(items), longest), dtype=torch.bool)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n, item = lengths[i], items[i]
            input_ids[r, start : start + n] = torch.tensor(item.input_ids[skip:], dtype=torch.long)
            position_ids[r, start : start + n] = torch.arange(skip, skip + n)
            segment[r, start : start + n] = i
            gather_index[i, :n] = torch.arange(r * width + start, r * width + start + n)
            token_mask[i, :n] = 1
            pool_mask[i, item.pool_start - skip : item.pool_end - skip] = True
            start += n
        position_ids[r, start:] = torch.arange(skip, skip + width - start)
    real = segment >= 0
    same_text = (segment.unsqueeze(2) == segment.unsqueeze(1)) & real.unsqueeze(2)  # (rows, width, width)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    prefix = real.unsqueeze(2).expand(-1, -1, skip)
    allowed = torch.cat([prefix, same_text & causal], dim=2)
    allowed[:, :, 0] |= ~real  # padding attends to the first key only: never to nothing, never to itself
    attention_mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": attention_mask.unsqueeze(1),
        "gather_index": gather_index,
        "token_mask": token_mask,
        "pool_mask": pool_mask,
    }


def unpack(hidden: torch.Tensor, gather_index: torch.Tensor) -> torch.Tensor:
    """``(rows, width, dim)`` packed states as ``(texts, longest text, dim)``, text i in row i from position 0;
    positions past a text's end repeat an arbitrary state (``token_mask`` marks the real ones)."""
    return hidden.reshape(-1, hidden.shape[-1])[gather_index]
