"""LangChain integration of echo embeddings (``pip install "echo-embeddings[langchain]"``)."""

from echo_embeddings.extras import import_extra

import_extra("langchain_core")

from langchain_echo.cache import cached_embeddings  # noqa: E402
from langchain_echo.embeddings import EchoEmbeddings  # noqa: E402
from langchain_echo.late_chunking import LateChunkingEmbeddings  # noqa: E402

__all__ = ["EchoEmbeddings", "LateChunkingEmbeddings", "cached_embeddings"]
