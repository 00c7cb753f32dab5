"""Semantic textual similarity: Spearman correlation of cosine similarity with gold scores, x100 (MTEB's score)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import read_records
from .arm import Arm
from .metrics import spearman
from .report import Result


def load_sts(path: Path, limit: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """``sentence1``, ``sentence2`` and ``score`` columns of an STS JSONL file (the first ``limit`` pairs)."""
    first, second, scores = [], [], []
    for record in read_records(path, {"sentence1": str, "sentence2": str, "score": (int, float)}):
        first.append(record["sentence1"])
        second.append(record["sentence2"])
        scores.append(float(record["score"]))
        if limit is not None and len(scores) == limit:
            break
    if len(scores) < 2:
        raise InputError(f"{path}: an STS file needs at least 2 pairs, found {len(scores)}")
    return first, second, scores


def evaluate_sts(arms: list[Arm], path: Path, limit: int | None = None, show_progress: bool = False) -> list[Result]:
    first, second, scores = load_sts(path, limit)
    unique = list(dict.fromkeys(first + second))  # each distinct sentence is embedded once
    index = {text: i for i, text in enumerate(unique)}
    results = []
    for arm in arms:
        start = time.perf_counter()
        vectors = arm.encode(unique, show_progress=show_progress)
        seconds = time.perf_counter() - start
        a, b = vectors[[index[t] for t in first]], vectors[[index[t] for t in second]]
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        results.append(
            Result("sts", Path(path).stem, arm.name, arm.pooling, "spearman", 100 * spearman(cosine, scores),
                   len(scores), seconds, len(unique) / seconds)
        )  # fmt: skip
    return results
