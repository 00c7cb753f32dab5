"""EchoEmbedding: LlamaIndex's ``BaseEmbedding`` over an :class:`echo_embeddings.EchoEncoder`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import Field, PrivateAttr, field_validator

from echo_embeddings import DEFAULT_MODEL
from echo_embeddings.templates import resolve_template
from echo_embeddings.texts import check_texts

if TYPE_CHECKING:
    from echo_embeddings import EchoEncoder


class EchoEmbedding(BaseEmbedding):
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

    model_name: str = Field(default=DEFAULT_MODEL, description="Hub id, local folder or .gguf file of a causal LM.")
    template: str | dict[str, str] = Field(
        default="echo",
        description="A preset (echo, echo-paragraph, classical, echo-instruct), a pattern with {text} slots, "
        "or {'document': ..., 'query': ...}.",
    )
    pooling: Literal["mean", "last"] = Field(default="mean", description="mean over the second copy, or last token.")
    query_instruction: str | None = Field(default=None, description="Instruction for queries.")
    text_instruction: str | None = Field(default=None, description="Instruction for texts (documents).")
    max_length: int = Field(default=512, gt=0, description="Bound on the whole sequence: template and both copies.")
    normalize: bool = Field(default=True, description="L2-normalize the vectors.")
    device: str | None = Field(default=None, description="cuda, mps, cpu...; None picks the best available.")
    dtype: str | None = Field(default=None, description="float32, bfloat16...; None: bfloat16 on CUDA, else float32.")
    # LlamaIndex hands texts over in chunks of embed_batch_size and the encoder runs each chunk as length-sorted
    # forward passes of that many texts: 10 (LlamaIndex's default) wastes time between small calls, 32 is one
    # efficient forward pass on CPU and GPU alike.
    embed_batch_size: int = Field(default=32, gt=0, le=2048, description="Texts per forward pass.")
    show_progress_bar: bool = Field(default=False, description="Show the encoder's progress bar.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="Passed to AutoModel.from_pretrained.")
    cache_folder: str | None = Field(default=None, description="Hugging Face download cache folder.")

    _encoder: EchoEncoder = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from echo_embeddings import EchoEncoder

        self._encoder = EchoEncoder.from_pretrained(
            self.model_name,
            template=self.template,
            pooling=self.pooling,
            max_length=self.max_length,
            normalize=self.normalize,
            device=self.device,
            dtype=self.dtype,
            model_kwargs=self.model_kwargs,
            cache_folder=self.cache_folder,
        )

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        resolve_template(value)  # raises with the list of presets
        return value

    @classmethod
    def class_name(cls) -> str:
        return "EchoEmbedding"

    @property
    def encoder(self) -> EchoEncoder:
        """The underlying :class:`echo_embeddings.EchoEncoder`."""
        return self._encoder

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        # Check the whole list first: LlamaIndex hands it over in chunks, so an error raised later would name the
        # index within a chunk, not within ``texts``.
        return super().get_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.encode_queries([query], instruction=self.query_instruction)[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encoder.encode_documents(
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
