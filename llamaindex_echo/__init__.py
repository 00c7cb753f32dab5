"""LlamaIndex integration of echo embeddings (``pip install "echo-embeddings[llamaindex]"``); also importable as
``llama_index.embeddings.echo``, as LlamaIndex's own integrations are."""

from echo_embeddings.extras import import_extra

import_extra("llama_index.core")

from llamaindex_echo.embedding import EchoEmbedding  # noqa: E402
from llamaindex_echo.late_chunking import EchoLateChunking  # noqa: E402

__all__ = ["EchoEmbedding", "EchoLateChunking"]
