"""LlamaIndex integration of echo embeddings."""

from llamaindex_echo.embedding import EchoEmbedding

__all__ = ["EchoEmbedding"]
