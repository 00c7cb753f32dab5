"""A cache of echo vectors that cannot hand back another setting's vectors: LangChain's ``CacheBackedEmbeddings``
keyed by the settings fingerprint and the form (query or document)."""

from __future__ import annotations

from typing import Any

from echo_embeddings.errors import MissingDependencyError

from .embeddings import EchoEmbeddings


def cached_embeddings(
    embeddings: EchoEmbeddings, store: Any, *, cache_queries: bool = True, batch_size: int | None = None
) -> Any:
    """``embeddings`` behind a ``CacheBackedEmbeddings`` on the ``ByteStore`` ``store`` (e.g. ``LocalFileStore``).

    Keys are ``<fingerprint>/document/`` or ``<fingerprint>/query/`` and the SHA-256 of the text (a folder per
    setting and form in a ``LocalFileStore``), so a vector is only ever returned to embeddings with the settings
    and the form that computed it; both forms share the store.
    ``batch_size``: texts embedded between store updates (None: all at once). Needs ``langchain-classic``.
    """
    try:
        from langchain_classic.embeddings import CacheBackedEmbeddings
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "langchain-classic (LangChain's CacheBackedEmbeddings) is not installed: pip install langchain-classic",
            extra=None,
        ) from None
    fingerprint = embeddings.fingerprint

    def backed(form: str) -> Any:
        return CacheBackedEmbeddings.from_bytes_store(
            embeddings, store, namespace=f"{fingerprint}/{form}/", key_encoder="sha256"
        ).document_embedding_store

    return CacheBackedEmbeddings(
        embeddings,
        backed("document"),
        batch_size=batch_size,
        query_embedding_store=backed("query") if cache_queries else None,
    )
