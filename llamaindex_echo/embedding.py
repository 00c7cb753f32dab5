"""EchoEmbedding: LlamaIndex's ``BaseEmbedding`` over an :class:`echo_embeddings.EchoEncoder`."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import Field

from echo_embeddings.settings import EncoderSettings
from echo_embeddings.texts import check_texts


class EchoEmbedding(EncoderSettings, BaseEmbedding):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are mean-pooled, so every token has seen the whole text.

    ::

        from llama_index.core import Settings
        from llamaindex_echo import EchoEmbedding

        Settings.embed_model = EchoEmbedding()  # SmolLM2-135M-Instruct, offline
        Settings.embed_model = EchoEmbedding(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")

    Queries use the template's query form with ``query_instruction``; texts use its document form with
    ``text_instruction``. Instances with the same model, device and dtype share one loaded model, and a pickled or
    ``to_dict`` copy reuses it in the same process.
    """

    text_instruction: str | None = Field(default=None, description="Instruction for texts (documents).")
    normalize: bool = Field(default=True, description="L2-normalize the vectors.")
    # LlamaIndex hands texts over in chunks of embed_batch_size and the encoder runs each chunk as length-sorted
    # forward passes of that many texts: LlamaIndex's default of 10 spends more time between calls, and on this
    # project's CPU benchmark 16-32 texts per pass were fastest (larger passes were slower).
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Texts per forward pass.")
    show_progress_bar: bool = Field(default=False, description="Show the encoder's progress bar.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load_encoder(normalize=self.normalize)

    @classmethod
    def class_name(cls) -> str:
        return "EchoEmbedding"

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        # Check the whole list first: LlamaIndex hands it over in chunks, so an error raised later would name the
        # index within a chunk, not within ``texts``.
        return super().get_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.encoder.encode_queries([query], instruction=self.query_instruction)[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.encoder.encode_documents(
            texts,
            instruction=self.text_instruction,
            batch_size=self.embed_batch_size,
            show_progress=self.show_progress_bar,
        ).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
