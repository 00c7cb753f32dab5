"""Reading texts from files and writing embeddings, streamed in chunks, with errors that name the file and line.

Inputs: ``.txt`` (one text per line), ``.jsonl`` (a string field, ``text`` by default), ``.csv`` and ``.parquet``
(a string column). Outputs: ``.npy``, ``.parquet`` (``id`` + ``embedding``) and ``.jsonl``. An output is written
to a temporary file beside it and renamed when complete, so an error never leaves a partial file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".parquet", ".jsonl")


class InputError(ValueError):
    """A problem with an input file, located as ``file:line``."""


def _suffix(path: Path, allowed: tuple[str, ...], role: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise InputError(f"{path}: unsupported {role} type {suffix or '(none)'!r}; use one of {', '.join(allowed)}")
    return suffix


def count_rows(path: Path, field: str = "text") -> int:
    """Read the whole input once, checking every row: how many texts it holds, or the first bad row's error."""
    rows = sum(len(texts) for _, texts in read_texts(path, field))
    if rows == 0:
        raise InputError(f"{path}: no texts (the file is empty)")
    return rows


def read_texts(path: Path, field: str = "text", chunk_size: int = 4096) -> Iterator[tuple[list[Any], list[str]]]:
    """Yield ``(ids, texts)`` chunks in file order; ids are the 0-based row numbers.

    A row without a string text raises :class:`InputError` naming the file and line (row for CSV/Parquet).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = _suffix(path, INPUT_SUFFIXES, "input")
    rows = {".txt": _txt_rows, ".jsonl": _jsonl_rows}.get(suffix)
    if rows is not None:
        ids: list[Any] = []
        texts: list[str] = []
        for row, text in rows(path, field):
            ids.append(row)
            texts.append(text)
            if len(texts) == chunk_size:
                yield ids, texts
                ids, texts = [], []
        if texts:
            yield ids, texts
        return
    yield from _table_chunks(path, suffix, field, chunk_size)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def read_records(path: Path, fields: dict[str, type | tuple[type, ...]]) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a ``.jsonl`` file, each checked to have ``fields`` of the given types."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    for number, line in _lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: malformed JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        for name, kind in fields.items():
            if name not in record:
                raise InputError(f"{path}:{number}: no field {name!r}")
            if not isinstance(record[name], kind) or isinstance(record[name], bool):
                raise InputError(f"{path}:{number}: field {name!r} is {type(record[name]).__name__}")
        yield record


def read_table(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` for every row of a ``.jsonl``, ``.csv`` or ``.parquet`` file, in file order.

    ``location`` is ``FILE:LINE`` (``FILE: row N`` for Parquet); a CSV's empty cell is None.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = _suffix(path, (".jsonl", ".csv", ".parquet"), "table")
    if suffix == ".jsonl":
        for number, line in _lines(path):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{number}: malformed JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield f"{path}:{number}", record
        return
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches()
        first_row, where = 0, "row"
    else:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            batches = pcsv.open_csv(path, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
        except pa.ArrowInvalid as err:
            raise InputError(f"{path}: unreadable CSV ({err})") from None
        first_row, where = 2, "line"  # line 1 is the header
    row = first_row
    for batch in batches:
        for record in batch.to_pylist():
            yield (f"{path}:{row}" if where == "line" else f"{path}: row {row}"), record
            row += 1


def _txt_rows(path: Path, field: str) -> Iterator[tuple[int, str]]:
    for number, line in _lines(path):
        yield number - 1, line


def _jsonl_rows(path: Path, field: str) -> Iterator[tuple[int, str]]:
    for row, record in enumerate(read_records(path, {field: str})):
        yield row, record[field]


def _table_chunks(path: Path, suffix: str, field: str, chunk_size: int) -> Iterator[tuple[list[Any], list[str]]]:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if field not in parquet.schema_arrow.names:
            raise InputError(f"{path}: no column {field!r} (columns: {', '.join(parquet.schema_arrow.names)})")
        batches = parquet.iter_batches(batch_size=chunk_size, columns=[field])
    else:
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(path, convert_options=pcsv.ConvertOptions(column_types={field: "string"}))
        if field not in reader.schema.names:
            raise InputError(f"{path}: no column {field!r} (columns: {', '.join(reader.schema.names)})")
        batches = reader
    start = 0
    for batch in batches:
        texts = batch.column(field).to_pylist()
        for offset, text in enumerate(texts):
            if not isinstance(text, str):
                where = f"line {start + offset + 2}" if suffix == ".csv" else f"row {start + offset}"
                raise InputError(f"{path}: {where}: column {field!r} is {type(text).__name__}, expected a string")
        yield list(range(start, start + len(texts))), texts
        start += len(texts)


class EmbeddingWriter:
    """Writes embeddings in row order to ``.npy``, ``.parquet`` or ``.jsonl``; the file appears only on success."""

    def __init__(self, path: Path, rows: int, dim: int) -> None:
        self.path = Path(path)
        self.suffix = _suffix(self.path, OUTPUT_SUFFIXES, "output")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.rows, self.dim, self.written = rows, dim, 0
        if self.suffix == ".npy":
            self._array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        elif self.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([("id", pa.int64()), ("embedding", pa.list_(pa.float32(), dim))])
            self._parquet = pq.ParquetWriter(self.tmp, self._schema)
        else:
            self._jsonl = open(self.tmp, "w", encoding="utf-8")

    def write(self, ids: list[Any], vectors: np.ndarray) -> None:
        if self.suffix == ".npy":
            self._array[self.written : self.written + len(vectors)] = vectors
        elif self.suffix == ".parquet":
            import pyarrow as pa

            flat = pa.array(vectors.reshape(-1), type=pa.float32())
            embedding = pa.FixedSizeListArray.from_arrays(flat, self.dim)
            self._parquet.write_table(pa.Table.from_arrays([pa.array(ids, pa.int64()), embedding], schema=self._schema))
        else:
            for row_id, vector in zip(ids, vectors, strict=True):
                self._jsonl.write(json.dumps({"id": row_id, "embedding": vector.tolist()}) + "\n")
        self.written += len(vectors)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self.suffix == ".npy":
            self._array.flush()
            del self._array
        elif self.suffix == ".parquet":
            self._parquet.close()
        else:
            self._jsonl.close()
        if exc_type is None and self.written == self.rows:
            os.replace(self.tmp, self.path)
            return
        self.tmp.unlink(missing_ok=True)
        if exc_type is None:
            raise RuntimeError(f"wrote {self.written} rows of {self.rows} to {self.path}; nothing was saved")
