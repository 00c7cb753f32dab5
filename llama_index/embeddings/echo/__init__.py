"""``from llama_index.embeddings.echo import EchoEmbedding``: the import path of LlamaIndex's own integrations,
for [llamaindex_echo][]."""

from llamaindex_echo import EchoEmbedding, EchoLateChunking

__all__ = ["EchoEmbedding", "EchoLateChunking"]
