"""The evaluation and training sets by Hugging Face Hub id, written once into the folder layout ``eval`` and
``train --recipe`` read (the layout of the project's offline data folder).

``eval sts --data mteb/stsbenchmark-sts``, ``eval retrieval --data mteb/scifact``, and ``hub`` for the whole folder
(``eval ablations --data hub``, ``train --recipe hub``): the sets MTEB and sentence-transformers publish, loaded
with ``datasets`` (``pip install "echo-embeddings[train]"``) into ``$ECHO_EMBEDDINGS_CACHE/datasets`` and reused.
A path that exists is always read as it is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import InputError

HUB = "hub"
"""The ``--data`` value that stands for every set below, in one folder."""

Loader = Callable[..., Any]
"""``datasets.load_dataset``'s signature: ``(path, name=None, split=...) -> Dataset``."""


def _sts(load: Loader, folder: Path) -> None:
    for split, name in (("train", "train"), ("validation", "dev"), ("test", "test")):
        rows = load("mteb/stsbenchmark-sts", split=split)
        _write(
            folder / "sts" / f"stsb-{name}.jsonl",
            ({k: r[k] for k in ("sentence1", "sentence2", "score")} for r in rows),
        )


def _scifact(load: Loader, folder: Path) -> None:
    target = folder / "retrieval" / "scifact"
    corpus = load("mteb/scifact", "corpus", split="corpus")
    _write(target / "corpus.jsonl", ({"_id": r["_id"], "title": r["title"], "text": r["text"]} for r in corpus))
    queries = load("mteb/scifact", "queries", split="queries")
    _write(target / "queries.jsonl", ({"_id": r["_id"], "text": r["text"]} for r in queries))
    for split in ("train", "test"):
        qrels = load("mteb/scifact", "default", split=split)
        lines = [f"{r['query-id']}\t{r['corpus-id']}\t{int(r['score'])}\n" for r in qrels]
        (target / "qrels").mkdir(parents=True, exist_ok=True)
        (target / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines))


def _banking77(load: Loader, folder: Path) -> None:
    for split in ("train", "test"):
        rows = load("mteb/banking77", split=split)
        label = "label_text" if "label_text" in rows.column_names else "label"
        _write(folder / "classification" / "banking77" / f"{split}.jsonl",
               ({"text": r["text"], "label": str(r[label])} for r in rows))  # fmt: skip


def _nli(load: Loader, folder: Path) -> None:
    rows = load("sentence-transformers/all-nli", "triplet", split="train")
    _write(folder / "nli" / "snli-train-triplets.jsonl",
           ({k: r[k] for k in ("anchor", "positive", "negative")} for r in rows))  # fmt: skip


SETS: dict[str, tuple[Callable[[Loader, Path], None], str]] = {
    "mteb/stsbenchmark-sts": (_sts, "sts/stsb-test.jsonl"),
    "mteb/scifact": (_scifact, "retrieval/scifact"),
    "mteb/banking77": (_banking77, "classification/banking77"),
    "sentence-transformers/all-nli": (_nli, "nli/snli-train-triplets.jsonl"),
}
"""Hub id -> (its writer, the path ``--data`` stands for inside the folder)."""


def resolve_data(value: str | os.PathLike, *, load: Loader | None = None, cache: Path | None = None) -> Path:
    """``value`` as a path when it exists; else a hub id of [SETS][] (or [HUB][] for all of them) written
    into the cache once, and the path it stands for there. ``load`` defaults to ``datasets.load_dataset``."""
    path = Path(value)
    if path.exists() or (str(value) not in SETS and str(value) != HUB):
        return path
    if cache is None:
        from .user_cache import cache_dir

        cache = cache_dir() / "datasets"
    if load is None:
        from .extras import import_extra

        load = import_extra("datasets").load_dataset
    names = list(SETS) if str(value) == HUB else [str(value)]
    for name in names:
        done = cache / f".{name.replace('/', '--')}.done"
        if not done.exists():
            try:
                SETS[name][0](load, cache)
            except (OSError, ConnectionError, ValueError) as err:
                raise InputError(f"{name}: could not load it from the Hugging Face Hub ({err})") from None
            done.touch()
    return cache if str(value) == HUB else cache / SETS[str(value)][1]


def _write(path: Path, records: Iterable[dict]) -> None:
    """``records`` as JSONL at ``path``, through a temporary file so a failed load leaves nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    partial.replace(path)
