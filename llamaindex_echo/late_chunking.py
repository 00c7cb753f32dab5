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
    ``VectorStoreIndex`` and ``IngestionPipeline`` keep them as they are:

    ```python
    embed_model = EchoEmbedding()
    index = VectorStoreIndex.from_documents(
        documents, transformations=[EchoLateChunking(embed_model=embed_model)], embed_model=embed_model
    )
    ```

    Metadata is not embedded (the vector covers the node's text in its document). A node with nothing to pool in
    its document (an empty or white-space document's node) is embedded alone, as ``embed_model`` embeds a node.
    Queries use ``embed_model``'s query form as usual.
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
        first: dict[str, int] = {}
        for i, document in enumerate(documents):
            if first.setdefault(document.doc_id, i) != i:
                raise InputError(
                    f"documents {first[document.doc_id]} and {i} share the id_ {document.doc_id!r}: their nodes "
                    "could not be told apart; give each Document its own id_"
                )
        chunks = self.splitter(documents, **kwargs)
        by_document: dict[str, list[TextNode]] = {document.doc_id: [] for document in documents}
        alone: list[TextNode] = []
        for chunk in chunks:
            if not isinstance(chunk, TextNode):
                raise InputError(f"the splitter gave a {type(chunk).__name__} ({chunk.node_id}): late chunking pools "
                                 "text nodes, whose place in their document is known")  # fmt: skip
            if chunk.get_content(metadata_mode=MetadataMode.NONE).strip():
                by_document[chunk.ref_doc_id or ""].append(chunk)
            else:
                alone.append(chunk)
        texts, spans = [], []
        for document in documents:
            text = document.get_content(metadata_mode=MetadataMode.NONE)
            texts.append(text)
            spans.append([_span(chunk, text) for chunk in by_document[document.doc_id]])
        vectors = self.embed_model.encoder.encode_chunks(texts, spans, show_progress=self.embed_model.show_progress_bar)
        for document, doc_vectors in zip(documents, vectors, strict=True):
            for chunk, vector in zip(by_document[document.doc_id], doc_vectors, strict=True):
                chunk.embedding = vector.tolist()
        if alone:
            alone_vectors = self.embed_model.get_text_embedding_batch(
                [chunk.get_content(metadata_mode=MetadataMode.EMBED) for chunk in alone]
            )
            for chunk, vector in zip(alone, alone_vectors, strict=True):
                chunk.embedding = vector
        return list(chunks)


def _span(node: TextNode, text: str) -> tuple[int, int]:
    """The node's characters in its document, as the splitter recorded them (checked against the text)."""
    content = node.get_content(metadata_mode=MetadataMode.NONE)
    start = node.start_char_idx
    if start is None or text[start : start + len(content)] != content:
        raise InputError(f"node {node.node_id} does not say where its text lies in document {node.ref_doc_id}")
    return start, start + len(content)
