"""Embedding a corpus on Ray Data: the same templates and vectors as one process, spread over actors.

Each actor loads the model once (a callable class in ``map_batches``). Nothing is dropped: a row whose text is
missing, null or not a string keeps its columns and gets a null ``embedding`` and an ``error`` reason; good rows get a
fixed-size float32 ``embedding`` and a null ``error``. [split_errors][] separates the two.
Install with ``pip install "echo-embeddings[ray]"``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data

from .config import EchoConfig
from .errors import ConfigError, InputError

EMBEDDING_COLUMN = "embedding"
ERROR_COLUMN = "error"


class _EmbedBatch:
    """Ray Data UDF: one encoder per actor, pyarrow batches in and out."""

    def __init__(self, text_column: str, query: bool, config: EchoConfig) -> None:
        from .encoder import EchoEncoder

        self.encoder = EchoEncoder.from_pretrained(**config.model_dump())
        self.text_column, self.query = text_column, query

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = table.column(self.text_column).to_pylist()
        good = [i for i, text in enumerate(texts) if isinstance(text, str)]
        vectors = self.encoder.encode([texts[i] for i in good], query=self.query)
        full = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        full[good] = vectors
        valid = np.zeros(len(texts), dtype=bool)
        valid[good] = True
        embedding = pa.FixedSizeListArray.from_arrays(
            pa.array(full.reshape(-1)), self.encoder.dim, mask=pa.array(~valid)
        )
        reason = f"{self.text_column!r} is missing, null or not a string"
        errors = [None if ok else reason for ok in valid]
        return table.append_column(EMBEDDING_COLUMN, embedding).append_column(
            ERROR_COLUMN, pa.array(errors, pa.string())
        )


def embed_dataset(
    ds: ray.data.Dataset,
    *,
    text_column: str = "text",
    query: bool = False,
    concurrency: int = 1,
    num_gpus: float = 0,
    num_cpus: float = 1,
    **settings: Any,
) -> ray.data.Dataset:
    """Add ``embedding`` and ``error`` columns to ``ds``, keeping every other column as it is.

    ``concurrency`` actors each load the model once and reserve ``num_gpus`` GPUs and ``num_cpus`` CPUs (on
    CPU, torch in an actor runs one thread per reserved CPU). ``settings`` are
    [EchoConfig][echo_embeddings.config.EchoConfig] fields (``model_name``, ``template``, ``batch_size``,
    ``max_length``, ``device``, ...), checked here, before any actor starts.

    Ray Data starts the actors before any upstream task: if they reserve every CPU of the cluster, read tasks
    never run and the job hangs (ray-project/ray#44687). Leave a CPU free or ``materialize()`` the input first.
    """
    config = EchoConfig.create(**settings)
    if config.precision != "float32":
        raise ConfigError(f"precision={config.precision!r}: Ray writes float32 vectors; quantize them afterwards")
    columns = ds.schema().names
    if text_column not in columns:
        raise InputError(f"the dataset has no column {text_column!r} (columns: {', '.join(columns)})")
    clash = {EMBEDDING_COLUMN, ERROR_COLUMN} & set(columns)
    if clash:
        raise InputError(f"the dataset already has column(s) {sorted(clash)}; rename them first")
    return ds.map_batches(
        _EmbedBatch,
        fn_constructor_kwargs={"text_column": text_column, "query": query, "config": config},
        batch_format="pyarrow",
        batch_size=max(config.batch_size, 256),
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_gpus=num_gpus,
        num_cpus=num_cpus,
    )


def read_jsonl(path: str, text_column: str = "text") -> ray.data.Dataset:
    """JSONL files (a file or a folder of ``*.jsonl``) as a Dataset whose ``text_column`` is a string or null.

    Unlike ``ray.data.read_json``, a row whose text is a number, list or object does not fail the whole read:
    its text becomes null, so [embed_dataset][] reports it as an error row.
    """

    def parse(batch: dict[str, np.ndarray]) -> pa.Table:
        records = [json.loads(line) for line in batch["text"] if line.strip()]
        for record in records:
            if not isinstance(record.get(text_column), str):
                record[text_column] = None
        return pa.Table.from_pylist(records)

    return ray.data.read_text(path, file_extensions=["jsonl"]).map_batches(parse, batch_format="numpy")


def split_errors(embedded: ray.data.Dataset) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """``(good rows without the error column, bad rows without the embedding column)``."""
    good = embedded.map_batches(_good_rows, batch_format="pyarrow")
    bad = embedded.map_batches(_bad_rows, batch_format="pyarrow")
    return good.drop_columns([ERROR_COLUMN]), bad.drop_columns([EMBEDDING_COLUMN])


def _good_rows(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.is_null(table.column(ERROR_COLUMN)))


def _bad_rows(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.is_valid(table.column(ERROR_COLUMN)))
