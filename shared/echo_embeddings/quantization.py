"""Smaller vectors: Matryoshka truncation and quantization (by sentence-transformers' ``quantize_embeddings``)."""

from __future__ import annotations

import numpy as np

from .config import EchoConfig
from .errors import InputError


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
    """Each dimension's minimum and maximum over ``vectors``: ``quantization_ranges`` for int8/uint8. An
    [InputError][echo_embeddings.errors.InputError] when a dimension takes one value over them (fewer than two
    distinct texts): its range would have no width."""
    low, high = vectors.min(axis=0), vectors.max(axis=0)
    flat = int((low >= high).sum())
    if flat:
        raise InputError(
            f"quantization_ranges: {flat} of {vectors.shape[1]} dimensions take one value over these "
            f"{len(vectors)} texts; compute the ranges on a sample of the corpus (hundreds of texts)"
        )
    return np.stack([low, high]).astype(float).tolist()


def as_float(vectors: np.ndarray, precision: str, dim: int) -> np.ndarray:
    """Quantized ``vectors`` as float32 vectors whose cosine similarity is the one their bytes stand for: int8
    as it is, uint8 centred (less 128), binary and ubinary unpacked to ``dim`` signs (+1 a set bit, -1 a clear one),
    whose cosine is ``1 - 2 * Hamming distance / dim``."""
    if precision in ("binary", "ubinary"):
        packed = (vectors.astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else vectors
        bits = np.unpackbits(packed, axis=1, count=dim)
        return bits.astype(np.float32) * 2 - 1
    if precision == "uint8":
        return vectors.astype(np.float32) - 128
    return vectors.astype(np.float32)
