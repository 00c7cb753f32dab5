"""LangChain integration of echo embeddings."""

from langchain_echo.embeddings import EchoEmbeddings

__all__ = ["EchoEmbeddings"]
