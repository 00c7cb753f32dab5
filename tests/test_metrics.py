"""Metrics against values computed by hand."""

import math

import pytest

from echo_embeddings.evaluation.metrics import ndcg_at_k, rank_with_ties, recall_at_k, spearman


def test_ranks_average_ties():
    assert rank_with_ties([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert rank_with_ties([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]


def test_spearman_with_ties_by_hand():
    # x ranks: 1, 2.5, 2.5, 4; y ranks: 1, 2, 3, 4 -> deviations (-1.5, 0, 0, 1.5) and (-1.5, -0.5, 0.5, 1.5)
    # covariance sum 4.5; norms sqrt(4.5) and sqrt(5) -> 4.5 / sqrt(22.5)
    assert spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2], [1])


def test_ndcg_graded_and_unjudged_by_hand():
    relevance = {"a": 2, "b": 1, "c": 0}  # "x" and "y" are unjudged: gain 0
    ranked = ["x", "b", "a", "y"]
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevance, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], relevance, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], relevance, 1) == 0.0
    assert ndcg_at_k(["a"], {"c": 0}, 10) == 0.0  # no relevant document at all


def test_recall_by_hand():
    relevance = {"a": 1, "b": 2, "c": 0}
    assert recall_at_k(["a", "x", "c"], relevance, 100) == 0.5
    assert recall_at_k(["x", "a", "b"], relevance, 2) == 0.5
