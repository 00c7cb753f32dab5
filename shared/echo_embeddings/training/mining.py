"""Hard negatives mined with the model about to be trained (zero-shot), by sentence-transformers' miner.

For each row without negatives (graded pairs aside: they take none), the closest positives of the other rows
with the same instruction are the candidates; a candidate is kept only if it scores at least ``margin``
(relative) below the row's own positive, so a near-duplicate of the positive is never used as its negative, and
never if it equals the anchor or the positive.
Rows for which no candidate passes keep no negatives (and train on in-batch negatives); the count is reported.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .data import TrainingRow

if TYPE_CHECKING:
    from ..st import EchoSentenceTransformer

logger = logging.getLogger(__name__)


def mine_negatives(
    rows: list[TrainingRow], model: EchoSentenceTransformer, *, count: int, margin: float, batch_size: int
) -> tuple[list[TrainingRow], int]:
    """``(rows, unmatched)``: ungraded rows without negatives get up to ``count`` mined ones; ``unmatched`` got none.

    ``model`` is a ``SentenceTransformer`` (the echo model before training). Row order is kept.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    out = list(rows)
    unmatched = 0
    by_instruction: dict[str | None, list[int]] = {}
    for i, row in enumerate(rows):
        if not row.negatives and row.score is None:
            by_instruction.setdefault(row.instruction, []).append(i)
    for instruction, indices in by_instruction.items():
        if len(indices) < 2:
            unmatched += len(indices)
            continue
        pairs = Dataset.from_dict(
            {"anchor": [rows[i].anchor for i in indices], "positive": [rows[i].positive for i in indices]}
        )
        mined = mine_hard_negatives(
            pairs,
            model,
            relative_margin=margin,
            num_negatives=count,
            sampling_strategy="top",
            query_prompt=instruction,
            output_format="n-tuple",
            batch_size=batch_size,
            verbose=False,
        )
        found: dict[tuple[str, str], list[str]] = {}
        for record in mined:
            negatives = [record[f"negative_{k}"] for k in range(1, count + 1)]
            found.setdefault((record["anchor"], record["positive"]), negatives)
        for i in indices:
            row = rows[i]
            negatives = [n for n in found.get((row.anchor, row.positive), []) if n not in (row.anchor, row.positive)]
            if len(negatives) == count:
                out[i] = row.with_negatives(negatives)
            else:
                unmatched += 1
    logger.info("mined %d hard negative(s) per row; %d row(s) had none within the margin", count, unmatched)
    return out, unmatched
