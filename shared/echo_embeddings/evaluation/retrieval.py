"""BEIR-layout retrieval: nDCG@10 and Recall@100 (x100), with a deterministic sub-corpus mode for CPUs.

Sub-corpus mode keeps every document relevant to the evaluated queries plus ``corpus_limit`` others drawn with
``random.Random(seed)`` from the rest (sorted by id), so the same arguments always give the same corpus. Arms that
read documents alike (the same [Arm.documents_key][echo_embeddings.evaluation.arm.Arm.documents_key]) embed the
corpus once; with ``cache``, once across runs too.
"""

from __future__ import annotations

import csv
import hashlib
import random
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import read_records
from .arm import Arm
from .metrics import ndcg_at_k, recall_at_k
from .report import Result


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query-id -> {corpus-id: grade}`` from a BEIR qrels TSV (with header)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or len(header) < 3:
            raise InputError(f"{path}:1: expected a header 'query-id corpus-id score'")
        for number, row in enumerate(reader, start=2):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                raise InputError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>integer score', got {row}")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def evaluate_retrieval(
    arms: list[Arm],
    data: Path,
    split: str = "test",
    limit: int | None = None,
    corpus_limit: int | None = None,
    seed: int = 0,
    show_progress: bool = False,
    *,
    only: Collection[str] | None = None,
    cache: Path | None = None,
) -> list[Result]:
    """nDCG@10 and Recall@100 per arm on ``split``'s judged queries (those in ``only``, when given; the first
    ``limit``) against the corpus (or a sub-corpus, with ``corpus_limit``). ``cache``: a folder keeping each
    reading's document vectors (``.npy``, by the arm's documents key and the documents' digest)."""
    data = Path(data)
    qrels = load_qrels(data / "qrels" / f"{split}.tsv")
    queries = {r["_id"]: r["text"] for r in read_records(data / "queries.jsonl", {"_id": str, "text": str})}
    query_ids = [q for q in queries if q in qrels and (only is None or q in only)][:limit]
    if not query_ids:
        raise InputError(f"{data}: no query of queries.jsonl has judgments in qrels/{split}.tsv")
    corpus = {
        r["_id"]: (r.get("title") or "") + " " + r["text"]
        for r in read_records(data / "corpus.jsonl", {"_id": str, "text": str})
    }
    doc_ids = sorted(corpus)
    if corpus_limit is not None:
        relevant = {doc for q in query_ids for doc in qrels[q] if doc in corpus}
        others = [doc for doc in doc_ids if doc not in relevant]
        doc_ids = sorted(relevant | set(random.Random(seed).sample(others, min(corpus_limit, len(others)))))
    docs = [corpus[d].strip() for d in doc_ids]
    dataset = data.name + (f"[{len(query_ids)}q/{len(doc_ids)}d]" if corpus_limit is not None or limit else "")
    results = []
    read: dict[str, np.ndarray] = {}
    documents_digest = hashlib.sha256("\0".join(docs).encode()).hexdigest()[:16]
    for arm in arms:
        start = time.perf_counter()
        encoded = len(query_ids)
        if arm.documents_key not in read:
            read[arm.documents_key] = _document_vectors(arm, docs, documents_digest, cache, show_progress)
            encoded += len(docs)
        doc_vectors = read[arm.documents_key]
        query_vectors = arm.encode([queries[q] for q in query_ids], query=True)
        seconds = time.perf_counter() - start
        scores = query_vectors @ doc_vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
        ranked = [[doc_ids[i] for i in row] for row in top]
        ndcg = np.mean([ndcg_at_k(r, qrels[q], 10) for r, q in zip(ranked, query_ids, strict=True)])
        recall = np.mean([recall_at_k(r, qrels[q], 100) for r, q in zip(ranked, query_ids, strict=True)])
        speed = encoded / seconds
        for metric, value in (("ndcg@10", ndcg), ("recall@100", recall)):
            results.append(
                Result("retrieval", dataset, arm.name, arm.pooling, metric, 100 * float(value),
                       len(query_ids), seconds, speed)
            )  # fmt: skip
    return results


def _document_vectors(arm: Arm, docs: list[str], digest: str, cache: Path | None, show_progress: bool) -> np.ndarray:
    if cache is None:
        return arm.encode(docs, show_progress=show_progress)
    key = hashlib.sha256(arm.documents_key.encode()).hexdigest()[:16]
    path = Path(cache) / f"{key}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = arm.encode(docs, show_progress=show_progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), vectors)
    path.with_suffix(".tmp.npy").replace(path)
    return vectors
