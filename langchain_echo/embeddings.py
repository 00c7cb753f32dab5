"""EchoEmbeddings: LangChain's ``Embeddings`` interface over an [echo_embeddings.EchoEncoder][]."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field, model_validator

from echo_embeddings.config import EchoConfig
from echo_embeddings.framework_settings import EncoderSettings
from echo_embeddings.texts import single_text

from .late_chunking import LateChunkingEmbeddings

ENCODE_KWARGS = {
    "batch_size": "batch_size",
    "normalize_embeddings": "normalize",
    "truncate_dim": "truncate_dim",
    "precision": "precision",
    "show_progress_bar": "show_progress",
}
"""``encode_kwargs`` keys (sentence-transformers' ``encode`` options) and the settings they set; ``prompt`` sets
``document_instruction``, and in ``query_encode_kwargs`` ``query_instruction``."""
SHARED_BY_QUERIES = {"normalize", "truncate_dim", "precision"}
"""Settings ``query_encode_kwargs`` may repeat but not change: queries and documents share one encoder, so that
their vectors compare."""


class EchoEmbeddings(EncoderSettings, Embeddings):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are pooled (the template's way), so every pooled token has seen the whole text.

    A drop-in for ``HuggingFaceEmbeddings``:

    ```python
    from langchain_echo import EchoEmbeddings

    embeddings = EchoEmbeddings()  # SmolLM2-135M-Instruct, offline
    embeddings = EchoEmbeddings(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")
    embeddings = EchoEmbeddings(model_name="my-fine-tuned-folder")  # reads its saved settings
    ```

    Every [echo_embeddings.config.EchoConfig][] setting is a field; ``model`` and ``normalize_embeddings``
    are accepted for ``model_name`` and ``normalize``. ``embed_documents`` uses the template's document form and
    ``embed_query`` its query form. Vectors are L2-normalized by default, unlike ``HuggingFaceEmbeddings``.
    ``HuggingFaceEmbeddings``' ``encode_kwargs`` and ``query_encode_kwargs`` are read as settings (see
    ``ENCODE_KWARGS``); a key with no echo meaning is refused. ``fingerprint`` identifies the vectors (a
    cache's namespace). Instances with the same model, device and dtype share one loaded model. The async methods
    run the sync ones in an executor thread, off the event loop.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    aliases: ClassVar[dict[str, str]] = {"model": "model_name", "normalize_embeddings": "normalize"}

    show_progress: bool = Field(default=False, description="Show a progress bar while embedding.")
    encode_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="HuggingFaceEmbeddings' encode options, read as settings (ENCODE_KWARGS)."
    )
    query_encode_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="The same for queries: prompt is the query instruction."
    )

    @model_validator(mode="before")
    @classmethod
    def _encode_kwargs_as_settings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key, value in (data.get("encode_kwargs") or {}).items():
            name = {**ENCODE_KWARGS, "prompt": "document_instruction"}.get(key)
            if name is None:
                raise ValueError(
                    f"encode_kwargs[{key!r}] has no echo equivalent; accepted: prompt, {', '.join(ENCODE_KWARGS)}"
                )
            if name in data and data[name] != value:
                raise ValueError(f"encode_kwargs[{key!r}] and {name!r} are the same setting, with different values")
            data[name] = value
        for key, value in (data.get("query_encode_kwargs") or {}).items():
            if key == "prompt":
                if data.setdefault("query_instruction", value) != value:
                    raise ValueError("query_encode_kwargs['prompt'] and 'query_instruction' differ: give one")
                continue
            name = ENCODE_KWARGS.get(key)
            if name not in SHARED_BY_QUERIES:
                raise ValueError(
                    f"query_encode_kwargs[{key!r}] has no echo equivalent for queries; accepted: prompt, "
                    f"{', '.join(k for k, v in ENCODE_KWARGS.items() if v in SHARED_BY_QUERIES)}"
                )
            if value != data.get(name, EchoConfig.model_fields[name].default):
                raise ValueError(
                    f"query_encode_kwargs[{key!r}]={value!r} differs from the documents' setting: "
                    "queries and documents share one encoder, so that their vectors compare"
                )
        return data

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

    def late_chunking(self, documents: Sequence[Document | str]) -> LateChunkingEmbeddings:
        """Embeddings for a vector store's ``add_documents`` of the chunks of ``documents`` (a splitter's, in order):
        each chunk late-chunked in its document ([LateChunkingEmbeddings][langchain_echo.LateChunkingEmbeddings]);
        queries as this object reads them."""
        return LateChunkingEmbeddings(self, documents)
