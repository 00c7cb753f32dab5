"""EchoEmbeddings: LangChain's ``Embeddings`` interface over an :class:`echo_embeddings.EchoEncoder`."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field

from echo_embeddings.settings import EncoderSettings, single_text


class EchoEmbeddings(EncoderSettings, Embeddings):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are mean-pooled, so every token has seen the whole text.

    A drop-in for ``HuggingFaceEmbeddings``::

        from langchain_echo import EchoEmbeddings

        embeddings = EchoEmbeddings()  # SmolLM2-135M-Instruct, offline
        embeddings = EchoEmbeddings(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")
        embeddings = EchoEmbeddings(model_name="my-fine-tuned-folder")  # reads its saved settings

    Every :class:`echo_embeddings.config.EchoConfig` setting is a field; ``model`` and ``normalize_embeddings``
    are accepted for ``model_name`` and ``normalize``. ``embed_documents`` uses the template's document form and
    ``embed_query`` its query form. Vectors are L2-normalized by default, unlike ``HuggingFaceEmbeddings``.
    Instances with the same model, device and dtype share one loaded model. The async methods run the sync ones in
    an executor thread, off the event loop.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    aliases: ClassVar[dict[str, str]] = {"model": "model_name", "normalize_embeddings": "normalize"}

    show_progress: bool = Field(default=False, description="Show a progress bar while embedding.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load_encoder(show_progress=self.show_progress)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the template's document form."""
        return self.encoder.encode_documents(texts, show_progress=self.show_progress).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with the template's query form and ``query_instruction``."""
        return self.encoder.encode_queries(single_text(text))[0].tolist()

    def embed_late_chunks(self, document: str, chunks: list[str]) -> list[list[float]]:
        """Late chunking: one vector per chunk of ``document`` from one pass over it (per window), so each chunk's
        vector knows its document. ``chunks`` are the splitter's pieces of ``document``, in order (e.g.
        ``[d.page_content for d in RecursiveCharacterTextSplitter().split_documents([doc])]``)."""
        from echo_embeddings.late_chunking import find_spans

        document = single_text(document, role="document")[0]
        return self.encoder.encode_chunks([document], [find_spans(document, chunks)])[0].tolist()
