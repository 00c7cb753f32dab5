"""Arm: one way of embedding to compare in an evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..encoder import EchoEncoder
from ..instructions import resolve_instruction
from ..quantization import as_float


@dataclass
class Arm:
    """One way of embedding to compare: a template (and its pooling) on the shared model.

    ``compute_matched`` keeps the first half of each text's tokens, so an echo template (two copies) spends about
    the tokens that a single-copy template spends on the whole text: the paper's compute-matched echo.
    ``query_instruction`` replaces the encoder's for queries (a name of INSTRUCTIONS or the text; None: the
    encoder's).
    """

    encoder: EchoEncoder
    compute_matched: bool = False
    query_instruction: str | None = None

    @property
    def name(self) -> str:
        return self.encoder.template.name + ("@half" if self.compute_matched else "")

    @property
    def pooling(self) -> str:
        return self.encoder.pooling

    @property
    def documents_key(self) -> str:
        """What decides this arm's document vectors: equal keys, equal vectors."""
        return self.encoder.fingerprint + ("@half" if self.compute_matched else "")

    def encode(self, texts: list[str], *, query: bool = False, show_progress: bool = False) -> np.ndarray:
        """Float32 vectors of ``texts``; quantized ones as [as_float][echo_embeddings.quantization.as_float] reads
        them, so that a cosine similarity of them is what their bytes stand for."""
        if self.compute_matched:
            texts = self._first_halves(texts)
        instruction = None
        if query and self.query_instruction is not None:
            instruction = resolve_instruction(self.query_instruction)
        vectors = self.encoder.encode(texts, query=query, instruction=instruction, show_progress=show_progress)
        return as_float(vectors, self.encoder.config.precision, self.encoder.dim)

    def _first_halves(self, texts: list[str]) -> list[str]:
        tokenizer = self.encoder.tokenizer
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return tokenizer.batch_decode([row[: math.ceil(len(row) / 2)] for row in ids])
