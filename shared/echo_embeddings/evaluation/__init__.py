"""Evaluations on real data: STS (Spearman), BEIR retrieval (nDCG@10, Recall@100), the paper's toy triples.

Importing this package (or its ``metrics``) does not import torch; ``arm`` and the task modules do.
"""
