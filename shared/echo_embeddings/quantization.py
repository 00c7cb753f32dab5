"""Smaller vectors: Matryoshka truncation and quantization (by sentence-transformers' ``quantize_embeddings``)."""

from __future__ import annotations

import numpy as np

from .config import EchoConfig


def shrink(vectors: np.ndarray, config: EchoConfig) -> np.ndarray:
    """``vectors`` (float32, one row a text) cut to ``config.truncate_dim`` dimensions (unit length again if
    ``config.normalize``) and quantized to ``config.precision``."""
    if config.truncate_dim is not None:
        vectors = truncate(vectors, config.truncate_dim, normalize=config.normalize)
    if config.precision == "float32":
        return vectors
    from .extras import import_extra

    util = import_extra("sentence_transformers.util", "st")
    ranges = np.asarray(config.quantization_ranges, dtype=np.float32) if config.quantization_ranges else None
    return util.quantize_embeddings(vectors, config.precision, ranges=ranges)


def truncate(vectors: np.ndarray, dim: int, *, normalize: bool) -> np.ndarray:
    """The first ``dim`` dimensions of float ``vectors``, unit length again if ``normalize``."""
    if dim >= vectors.shape[1]:
        return vectors
    vectors = np.ascontiguousarray(vectors[:, :dim])
    if normalize:
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return vectors


def ranges_of(vectors: np.ndarray) -> list[list[float]]:
    """Each dimension's minimum and maximum over ``vectors``: ``quantization_ranges`` for int8/uint8."""
    return np.stack([vectors.min(axis=0), vectors.max(axis=0)]).astype(float).tolist()
