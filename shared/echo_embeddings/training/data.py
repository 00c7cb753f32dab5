"""Training rows: an anchor, its positive, optional negatives and an optional instruction, checked one by one.

Files are ``.jsonl``, ``.csv`` or ``.parquet`` with the columns ``anchor``, ``positive``, ``negative`` (or
``negative_1``, ``negative_2``, ...) and ``instruction``. Every row is checked before training starts; the first
bad one stops the run with its file and line. Nothing is skipped or repaired.

A row with an ``instruction`` is asymmetric (a query and the text it should find): its anchor is embedded with the
template's query form and that instruction, its positive and negatives with the document form. A row without one
is symmetric (two texts that mean the same): every text is embedded with the document form, as ``encode`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TrainingDataError
from ..files import InputError, read_table

ANCHOR, POSITIVE, INSTRUCTION = "anchor", "positive", "instruction"
_NEGATIVE = re.compile(r"^negative(?:_(\d+))?$")


@dataclass(frozen=True)
class TrainingRow:
    """One training example. ``negatives`` are texts the anchor must rank below its positive."""

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()
    instruction: str | None = None

    def with_negatives(self, negatives: Iterable[str]) -> TrainingRow:
        return TrainingRow(self.anchor, self.positive, tuple(negatives), self.instruction)


def read_training_rows(paths: Iterable[str | os.PathLike]) -> list[TrainingRow]:
    """Every row of every file, in order; the first bad row raises :class:`TrainingDataError` with its location."""
    rows: list[TrainingRow] = []
    for path in paths:
        try:
            rows.extend(check_row(record, where) for where, record in read_table(Path(path)))
        except InputError as err:
            raise TrainingDataError(str(err)) from None
    if not rows:
        raise TrainingDataError("no training rows: the input files are empty")
    return rows


def check_row(record: dict[str, Any], where: str) -> TrainingRow:
    """The row as a :class:`TrainingRow`, or a :class:`TrainingDataError` that starts with ``where``."""
    negative_columns = sorted((c for c in record if _NEGATIVE.match(c)), key=_negative_order)
    unknown = set(record) - {ANCHOR, POSITIVE, INSTRUCTION, *negative_columns}
    if unknown:
        raise TrainingDataError(
            f"{where}: unknown column(s) {sorted(unknown)}; training rows have anchor, positive, "
            "negative (or negative_1, negative_2, ...) and instruction"
        )
    anchor, positive = (_text(record, column, where) for column in (ANCHOR, POSITIVE))
    negatives = tuple(_text(record, column, where) for column in negative_columns)
    instruction = record.get(INSTRUCTION)
    if instruction is not None and not isinstance(instruction, str):
        raise TrainingDataError(f"{where}: 'instruction' is {type(instruction).__name__}, expected a string or null")
    return TrainingRow(anchor, positive, negatives, instruction or None)


def group_rows(rows: Iterable[TrainingRow]) -> Iterator[tuple[tuple[str | None, int], list[TrainingRow]]]:
    """Rows grouped by (instruction, number of negatives), in order of first appearance.

    A batch is drawn from one group, so its rows share a shape (columns) and a way of being embedded.
    """
    groups: dict[tuple[str | None, int], list[TrainingRow]] = {}
    for row in rows:
        groups.setdefault((row.instruction, len(row.negatives)), []).append(row)
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


def _negative_order(column: str) -> int:
    number = _NEGATIVE.match(column).group(1)  # type: ignore[union-attr]
    return int(number) if number else 0
