"""EchoEmbeddings: LangChain's ``Embeddings`` interface over an :class:`echo_embeddings.EchoEncoder`."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field

from echo_embeddings import DEFAULT_MODEL
from echo_embeddings.settings import EncoderSettings


class EchoEmbeddings(EncoderSettings, Embeddings):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are mean-pooled, so every token has seen the whole text.

    A drop-in for ``HuggingFaceEmbeddings``::

        from langchain_echo import EchoEmbeddings

        embeddings = EchoEmbeddings()  # SmolLM2-135M-Instruct, offline
        embeddings = EchoEmbeddings(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")

    ``embed_documents`` uses the template's document form and ``embed_query`` its query form, so
    ``query_instruction`` applies to queries only. Vectors are L2-normalized by default
    (``normalize_embeddings=True``), unlike ``HuggingFaceEmbeddings``. Instances with the same model, device and
    dtype share one loaded model. The async methods run the sync ones in an executor thread, off the event loop.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    model_name: str = Field(
        default=DEFAULT_MODEL, alias="model", description="Hub id, local folder or .gguf file of a causal LM."
    )
    batch_size: int = Field(
        default=32, gt=0, description="Texts per forward pass (batches of long texts hold fewer: 256 tokens a text)."
    )
    normalize_embeddings: bool = Field(default=True, description="L2-normalize, so dot product equals cosine.")
    show_progress: bool = Field(default=False, description="Show a progress bar while embedding.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load_encoder(normalize=self.normalize_embeddings)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the template's document form."""
        return self.encoder.encode_documents(
            texts, batch_size=self.batch_size, show_progress=self.show_progress
        ).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with the template's query form and ``query_instruction``."""
        if not isinstance(text, str):
            raise TypeError(f"the query is {type(text).__name__}, expected str: {text!r:.80}")
        return self.encoder.encode_queries([text], instruction=self.query_instruction)[0].tolist()
