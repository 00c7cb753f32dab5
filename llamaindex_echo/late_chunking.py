"""EchoLateChunking: a LlamaIndex transformation that splits documents and gives every node a late-chunked vector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.node_parser import NodeParser, SentenceSplitter
from llama_index.core.schema import BaseNode, Document, MetadataMode, TextNode, TransformComponent
from pydantic import Field

from echo_embeddings.errors import InputError

from .embedding import EchoEmbedding


class EchoLateChunking(TransformComponent):
    """Splits documents into nodes with ``splitter`` and embeds each node from one pass over its whole document.

    Each node's vector pools the echo second copy over the node's own characters, after the model has read the
    document around it (late chunking), instead of the node read alone. Nodes come back with ``embedding`` set, so
    ``VectorStoreIndex`` and ``IngestionPipeline`` keep them as they are::

        embed_model = EchoEmbedding()
        index = VectorStoreIndex.from_documents(
            documents, transformations=[EchoLateChunking(embed_model=embed_model)], embed_model=embed_model
        )

    Metadata is not embedded (the vector covers the node's text in its document). Queries use ``embed_model``'s
    query form as usual.
    """

    splitter: NodeParser = Field(default_factory=SentenceSplitter, description="Splits each document into nodes.")
    embed_model: EchoEmbedding = Field(description="The echo model whose document form reads each document.")

    @classmethod
    def class_name(cls) -> str:
        return "EchoLateChunking"

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[BaseNode]:
        documents = [node for node in nodes if isinstance(node, Document)]
        if len(documents) != len(nodes):
            raise InputError("EchoLateChunking takes Documents (it splits them itself); put it first, in place of "
                             "the splitter")  # fmt: skip
        chunks = self.splitter(documents, **kwargs)
        by_document: dict[str, list[TextNode]] = {document.doc_id: [] for document in documents}
        for chunk in chunks:
            by_document[chunk.ref_doc_id or ""].append(chunk)
        texts, spans = [], []
        for document in documents:
            text = document.get_content(metadata_mode=MetadataMode.NONE)
            texts.append(text)
            spans.append([_span(chunk, text) for chunk in by_document[document.doc_id]])
        vectors = self.embed_model.encoder.encode_chunks(texts, spans, show_progress=self.embed_model.show_progress_bar)
        for document, doc_vectors in zip(documents, vectors, strict=True):
            for chunk, vector in zip(by_document[document.doc_id], doc_vectors, strict=True):
                chunk.embedding = vector.tolist()
        return list(chunks)


def _span(node: TextNode, text: str) -> tuple[int, int]:
    """The node's characters in its document, as the splitter recorded them (checked against the text)."""
    content = node.get_content(metadata_mode=MetadataMode.NONE)
    start = node.start_char_idx
    if start is None or text[start : start + len(content)] != content:
        raise InputError(f"node {node.node_id} does not say where its text lies in document {node.ref_doc_id}")
    return start, start + len(content)
