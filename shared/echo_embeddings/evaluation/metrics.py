"""Evaluation metrics as MTEB reports them: Spearman for STS, nDCG@k and Recall@k for retrieval. numpy only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def rank_with_ties(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; tied values share the average of the ranks they span."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="stable")
    sorted_values = array[order]
    ranks = np.empty(len(array), dtype=np.float64)
    start = 0
    for end in range(1, len(array) + 1):
        if end == len(array) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2
            start = end
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of tie-averaged ranks)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"spearman needs two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    rx, ry = rank_with_ties(x), rank_with_ties(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator else float("nan")


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains, as trec_eval/pytrec_eval (BEIR, MTEB) compute it.

    ``ranked`` lists document ids best first; ``relevance`` maps judged ids to grades (unjudged ids count 0).
    """
    dcg = sum(relevance.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((grade for grade in relevance.values() if grade > 0), reverse=True)[:k]
    idcg = sum(grade / math.log2(i + 2) for i, grade in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 100) -> float:
    """The fraction of relevant documents (grade > 0) found in the top ``k``."""
    relevant = {doc for doc, grade in relevance.items() if grade > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0
