"""Reading texts from files and writing embeddings, streamed in chunks, with errors that name the file and line.

Inputs: ``.txt`` (one text per line), ``.jsonl`` (a string field, ``text`` by default), ``.csv`` and ``.parquet``
(a string column). Outputs: ``.npy``, ``.parquet`` (``id`` + ``embedding``) and ``.jsonl``. An output is written
to a temporary file beside it and renamed when complete, so an error never leaves a partial file behind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .extras import require

INPUT_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
OUTPUT_SUFFIXES = (".npy", ".parquet", ".jsonl")


PARTIAL_SUFFIX = ".partial"
"""An output being written is ``.NAME.PID.partial`` beside it until complete; a later run removes those whose
process is gone (killed runs)."""


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

    A row without a string text raises [InputError][] naming the file and line (row for CSV/Parquet).
    """
    path = _existing_file(path)
    suffix = _suffix(path, INPUT_SUFFIXES, "input")
    if suffix == ".txt" and field != "text":
        raise InputError(
            f"{path}: --field {field!r} does not apply to .txt (a text per line); use .jsonl, .csv or .parquet"
        )
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


def _existing_file(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded; a UTF-8 byte-order mark is dropped, not read as text."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise InputError(f"{path}:{number}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
            yield number, line.removeprefix("\ufeff") if number == 1 else line


def _json_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of a JSONL file; blank lines at its end (an editor's habit) are skipped, elsewhere an error."""
    blank = None
    for number, line in _lines(path):
        if not line.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise InputError(f"{path}:{blank}: blank line (only blank lines at the end of a file are skipped)")
        yield number, line


def _json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every line of a JSONL file; anything but a JSON object is an error."""
    for number, line in _json_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: malformed JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def read_records(path: Path, fields: Mapping[str, type | tuple[type, ...]]) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a ``.jsonl`` file, each checked to have ``fields`` of the given types (a number
    finite: JSON readers take NaN and Infinity)."""
    path = _existing_file(path)
    for number, record in _json_objects(path):
        for name, kind in fields.items():
            if name not in record:
                raise InputError(f"{path}:{number}: no field {name!r}")
            if not isinstance(record[name], kind) or isinstance(record[name], bool):
                raise InputError(f"{path}:{number}: field {name!r} is {type(record[name]).__name__}")
            if isinstance(record[name], float) and not math.isfinite(record[name]):
                raise InputError(f"{path}:{number}: field {name!r} is {record[name]}, expected a finite number")
        yield record


def _batches_named(batches: Iterator[Any], path: Path) -> Iterator[Any]:
    """pyarrow's batches, with a read error (e.g. invalid UTF-8 in a CSV) reported against ``path``."""
    import pyarrow as pa

    iterator = iter(batches)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except pa.ArrowInvalid as err:
            raise InputError(f"{path}: unreadable ({err})") from None
        except UnicodeDecodeError as err:
            raise _not_utf8(path, err) from None


def _not_utf8(path: Path, err: UnicodeDecodeError) -> InputError:
    """The error for a table file (CSV) that is not UTF-8, naming the file and where."""
    return InputError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start}); save it as UTF-8")


def check_output(path: Path, source: Path | None = None) -> None:
    """Fail now, before any work, if ``path`` cannot be written as an output (type, folder, the input itself, the
    package its type needs)."""
    path = Path(path)
    if _suffix(path, OUTPUT_SUFFIXES, "output") == ".parquet":
        require(("pyarrow",), "eval")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give an output file")
    if source is not None and (path.resolve() == Path(source).resolve() or _same_file(path, source)):
        raise InputError(f"{path}: the output would overwrite the input; choose another output file")
    _check_writable_folder(path.parent)


def check_output_folder(folder: Path) -> None:
    """Fail now if results cannot be written into ``folder`` (created if missing)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    _check_writable_folder(folder)


def _check_writable_folder(folder: Path) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: cannot write there ({existing} is not a writable folder)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_table(path: Path, numbers: tuple[str, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(location, record)`` for every row of a ``.jsonl``, ``.csv`` or ``.parquet`` file, in file order.

    ``location`` is ``FILE:LINE`` (``FILE: row N`` for Parquet). A CSV's cells are text as written (``NA``, ``001``
    and ``true`` included), an empty cell is None, and the ``numbers`` columns are parsed as numbers.
    """
    path = _existing_file(path)
    suffix = _suffix(path, (".jsonl", ".csv", ".parquet"), "table")
    if suffix == ".jsonl":
        for number, record in _json_objects(path):
            yield f"{path}:{number}", record
        return
    if suffix == ".csv":
        yield from _csv_records(path, numbers)
        return
    import pyarrow.parquet as pq

    row = 0
    for batch in _batches_named(pq.ParquetFile(path).iter_batches(), path):
        for record in batch.to_pylist():
            yield f"{path}: row {row}", record
            row += 1


def _csv_records(path: Path, numbers: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A CSV's rows as text, by the line each starts on (a quoted cell may span lines; blank lines are skipped)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}:1: no header row")
            start = reader.line_num + 1
            for cells in reader:
                where = f"{path}:{start}"
                start = reader.line_num + 1
                if not cells:
                    continue
                if len(cells) != len(header):
                    raise InputError(f"{where}: {len(cells)} cells, but the header names {len(header)} columns")
                record: dict[str, Any] = {
                    name: cell if cell != "" else None for name, cell in zip(header, cells, strict=True)
                }
                for name in numbers:
                    if record.get(name) is not None:
                        try:
                            record[name] = float(record[name])
                        except ValueError:
                            raise InputError(f"{where}: {name!r} is {record[name]!r}, expected a number") from None
                yield where, record
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: unreadable CSV ({err})") from None


def _txt_rows(path: Path, field: str) -> Iterator[tuple[int, str]]:
    for number, line in _lines(path):
        yield number - 1, line


def _jsonl_rows(path: Path, field: str) -> Iterator[tuple[Any, str]]:
    """``(id, text)``: the record's own ``id`` where it has one, else its row number. Ids are one kind in a file
    (every row a string id, or every row an int id or none), so every output format can hold them."""
    first: tuple[int, str] | None = None  # the line and kind of the first row's id
    for row, (number, record) in enumerate(_json_objects(path)):
        text = record.get(field)
        if not isinstance(text, str):
            problem = f"no field {field!r}" if field not in record else f"field {field!r} is {type(text).__name__}"
            raise InputError(f"{path}:{number}: {problem}")
        identifier = record.get("id", row)
        kind = "a string" if isinstance(identifier, str) else "an int or none"
        if not isinstance(identifier, (str, int)) or isinstance(identifier, bool):
            raise InputError(
                f"{path}:{number}: id {identifier!r:.40} is {type(identifier).__name__}: use a string or an int"
            )
        if first is None:
            first = (number, kind)
        elif kind != first[1]:
            raise InputError(f"{path}:{number}: id {identifier!r:.40} is {kind}, but line {first[0]}'s is "
                             f"{first[1]}: give every row a string id, or none an id")  # fmt: skip
        yield identifier, text


def _table_chunks(path: Path, suffix: str, field: str, chunk_size: int) -> Iterator[tuple[list[Any], list[str]]]:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        if field not in parquet.schema_arrow.names:
            raise InputError(f"{path}: no column {field!r} (columns: {', '.join(parquet.schema_arrow.names)})")
        batches = parquet.iter_batches(batch_size=chunk_size, columns=[field])
    else:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            reader = pcsv.open_csv(path, convert_options=pcsv.ConvertOptions(column_types={field: "string"}))
            names = reader.schema.names
        except pa.ArrowInvalid as err:
            raise InputError(f"{path}: unreadable ({err})") from None
        except UnicodeDecodeError as err:
            raise _not_utf8(path, err) from None
        if field not in names:
            raise InputError(f"{path}: no column {field!r} (columns: {', '.join(names)})")
        batches = reader
    start = 0
    for batch in _batches_named(batches, path):
        texts = batch.column(field).to_pylist()
        for offset, text in enumerate(texts):
            if not isinstance(text, str):
                where = f"line {start + offset + 2}" if suffix == ".csv" else f"row {start + offset}"
                raise InputError(f"{path}: {where}: column {field!r} is {type(text).__name__}, expected a string")
        yield list(range(start, start + len(texts))), texts
        start += len(texts)


class EmbeddingWriter:
    """Writes embeddings in row order to ``.npy``, ``.parquet`` or ``.jsonl``; the file appears only on success.

    It is written as ``.NAME.PID.partial`` beside the output and renamed when complete, with the mode the output
    already had, or the user's umask for a new file. Partial files of runs that were killed are removed first.
    The vectors' type and width are the first batch's (float32, int8 or uint8). ``metadata`` (the settings
    fingerprint and the settings) goes into a Parquet file's schema metadata under ``echo_embeddings``, and beside
    a ``.npy`` or ``.jsonl`` file as ``NAME.meta.json``.
    """

    def __init__(self, path: Path, rows: int, dim: int, *, metadata: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.suffix = _suffix(self.path, OUTPUT_SUFFIXES, "output")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(self.path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
        self.tmp.touch()
        self.rows, self.dim, self.written = rows, dim, 0
        self.metadata = metadata
        self._array: Any = None  # .npy: opened at the first write, when the vectors' type is known
        self._parquet: Any = None  # .parquet: likewise, with the ids' type
        self._jsonl = open(self.tmp, "w", encoding="utf-8") if self.suffix == ".jsonl" else None

    def write(self, ids: list[Any], vectors: np.ndarray) -> None:
        if self.suffix == ".npy":
            if self._array is None:
                self._open_npy(vectors.dtype, vectors.shape[1])
            self._array[self.written : self.written + len(vectors)] = vectors
        elif self.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            id_column = pa.array(ids)
            width = vectors.shape[1]
            if self._parquet is None:
                embedding_type = pa.list_(pa.from_numpy_dtype(vectors.dtype), width)
                schema = pa.schema([("id", id_column.type), ("embedding", embedding_type)])
                if self.metadata is not None:
                    schema = schema.with_metadata({"echo_embeddings": json.dumps(self.metadata)})
                self._parquet = pq.ParquetWriter(self.tmp, schema)
            flat = pa.array(vectors.reshape(-1))
            embedding = pa.FixedSizeListArray.from_arrays(flat, width)
            table = pa.Table.from_arrays([id_column.cast(self._parquet.schema.field("id").type), embedding],
                                         schema=self._parquet.schema)  # fmt: skip
            self._parquet.write_table(table)
        else:
            assert self._jsonl is not None  # opened for .jsonl
            for row_id, vector in zip(ids, vectors, strict=True):
                self._jsonl.write(json.dumps({"id": row_id, "embedding": vector.tolist()}) + "\n")
        self.written += len(vectors)

    def _open_npy(self, dtype: np.dtype, width: int) -> None:
        self._array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=dtype, shape=(self.rows, width))

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: BaseException | None) -> None:
        try:
            self._close()
            if exc_type is None and self.written == self.rows:
                os.chmod(self.tmp, _mode_for(self.path))
                os.replace(self.tmp, self.path)
                if self.metadata is not None and self.suffix != ".parquet":
                    meta = self.path.with_name(self.path.name + ".meta.json")
                    meta.write_text(json.dumps(self.metadata, indent=2) + "\n", encoding="utf-8")
                return
        finally:
            self.tmp.unlink(missing_ok=True)
        if exc_type is None:
            raise RuntimeError(f"wrote {self.written} rows of {self.rows} to {self.path}; nothing was saved")

    def _close(self) -> None:
        if self.suffix == ".npy":
            if self._array is None:  # no rows: an empty float32 array
                self._open_npy(np.dtype(np.float32), self.dim)
            self._array.flush()
            self._array = None
        elif self.suffix == ".parquet":
            if self._parquet is not None:
                self._parquet.close()
        elif self._jsonl is not None:
            self._jsonl.close()


def _mode_for(path: Path) -> int:
    """The mode ``path`` has now, or what a new file gets under the user's umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def follow_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the modes a new file and folder get under the user's umask (libraries
    such as safetensors write weights as 0600, which other accounts cannot read)."""
    umask = current_umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _remove_dead_partials(path: Path) -> None:
    """Remove ``.NAME.PID.partial`` files beside ``path`` whose process no longer runs."""
    for partial in path.parent.glob(f".{path.name}.*{PARTIAL_SUFFIX}"):
        pid = partial.name[len(path.name) + 2 : -len(PARTIAL_SUFFIX)]
        if pid.isdigit() and not _running(int(pid)):
            partial.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
