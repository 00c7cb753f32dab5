"""Training rows: an anchor, its positive, optional negatives and an optional instruction, checked one by one.

Files are ``.jsonl``, ``.csv`` or ``.parquet`` with the columns ``anchor``, ``positive``, ``negative`` (or
``negative_1``, ``negative_2``, ...), ``instruction`` and ``score``. Every row is checked before training starts;
the first bad one stops the run with its file and line. Nothing is skipped or repaired.

A row with a ``score`` is a graded pair (two texts and how similar they are, on any scale, higher meaning more
alike, as STS data gives them): it trains with CoSENT, which ranks the pairs of a batch by their scores, and it
takes no negatives. A row without one trains with InfoNCE: the anchor must find its positive among the batch.

A text may mark one span to pool, late-chunked, within the whole text it reads
([mark_span][echo_embeddings.late_chunking.mark_span]): a claim's positive can be its passage inside the document
that holds it, read whole.

A row with an ``instruction`` is asymmetric (a query and the text it should find): its anchor is embedded with the
template's query form and that instruction, its positive and negatives with the document form. A row without one
is symmetric (two texts that mean the same): every text is embedded with the document form, as ``encode`` does.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, TrainingDataError
from ..files import read_table
from ..late_chunking import marked_span

ANCHOR, POSITIVE, INSTRUCTION, SCORE = "anchor", "positive", "instruction", "score"
_NEGATIVE = re.compile(r"^negative(?:_(\d+))?$")


@dataclass(frozen=True)
class TrainingRow:
    """One training example. ``negatives`` are texts the anchor must rank below its positive; ``score`` makes
    the row a graded pair (anchor and positive are then just its two texts), which has no negatives."""

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()
    instruction: str | None = None
    score: float | None = None

    def with_negatives(self, negatives: Iterable[str]) -> TrainingRow:
        return TrainingRow(self.anchor, self.positive, tuple(negatives), self.instruction, self.score)


def read_training_rows(paths: Iterable[str | os.PathLike]) -> list[TrainingRow]:
    """Every row of every file, in order; the first bad row raises [TrainingDataError][] with its location."""
    rows: list[TrainingRow] = []
    for path in paths:
        try:
            rows.extend(check_row(record, where) for where, record in read_table(Path(path), numbers=(SCORE,)))
        except InputError as err:
            raise TrainingDataError(str(err)) from None
    if not rows:
        raise TrainingDataError("no training rows: the input files are empty")
    return rows


def check_row(record: dict[str, Any], where: str) -> TrainingRow:
    """The row as a [TrainingRow][], or a [TrainingDataError][] that starts with ``where``."""
    negative_columns = sorted((c for c in record if _NEGATIVE.match(c)), key=_negative_order)
    unknown = set(record) - {ANCHOR, POSITIVE, INSTRUCTION, SCORE, *negative_columns}
    if unknown:
        raise TrainingDataError(
            f"{where}: unknown column(s) {sorted(unknown)}; training rows have anchor, positive, "
            "negative (or negative_1, negative_2, ...), instruction and score"
        )
    anchor, positive = (_text(record, column, where) for column in (ANCHOR, POSITIVE))
    negatives = tuple(_text(record, column, where) for column in negative_columns)
    for column, text in zip((ANCHOR, POSITIVE, *negative_columns), (anchor, positive, *negatives), strict=True):
        try:
            marked_span(text, 0)
        except InputError:
            raise TrainingDataError(f"{where}: {column!r} marks a span wrongly: one SPAN_START, then one SPAN_END, "
                                    "text between") from None  # fmt: skip
    instruction = record.get(INSTRUCTION)
    if instruction is not None and not isinstance(instruction, str):
        raise TrainingDataError(f"{where}: 'instruction' is {type(instruction).__name__}, expected a string or null")
    score = _score(record, where)
    if score is not None and negatives:
        raise TrainingDataError(f"{where}: a row with a 'score' is a graded pair and takes no negatives")
    return TrainingRow(anchor, positive, negatives, instruction or None, score)


RowGroup = tuple[str | None, int, bool]
"""What the rows of a group share: instruction, number of negatives, graded (scored) or not."""


def group_rows(rows: Iterable[TrainingRow]) -> Iterator[tuple[RowGroup, list[TrainingRow]]]:
    """Rows grouped by (instruction, number of negatives, graded), in order of first appearance.

    A batch is drawn from one group, so its rows share a shape (columns), a loss and a way of being embedded.
    """
    groups: dict[RowGroup, list[TrainingRow]] = {}
    for row in rows:
        groups.setdefault((row.instruction, len(row.negatives), row.score is not None), []).append(row)
    yield from groups.items()


def _text(record: dict[str, Any], column: str, where: str) -> str:
    if column not in record or record[column] is None:
        raise TrainingDataError(f"{where}: missing {column!r}")
    value = record[column]
    if not isinstance(value, str):
        raise TrainingDataError(f"{where}: {column!r} is {type(value).__name__}, expected a string")
    if not value.strip():
        raise TrainingDataError(f"{where}: {column!r} is empty")
    return value


def _score(record: dict[str, Any], where: str) -> float | None:
    value = record.get(SCORE)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrainingDataError(f"{where}: 'score' is {type(value).__name__}, expected a number or null")
    if not math.isfinite(value):
        raise TrainingDataError(f"{where}: 'score' is {value}, expected a finite number")
    return float(value)


def _negative_order(column: str) -> int:
    number = _NEGATIVE.match(column).group(1)  # type: ignore[union-attr]
    return int(number) if number else 0
