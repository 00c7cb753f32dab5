"""LateChunkingEmbeddings: late-chunked chunk vectors through LangChain's ``Embeddings`` interface, so that any vector
store's ``add_documents`` stores them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from echo_embeddings.errors import InputError
from echo_embeddings.texts import check_texts

if TYPE_CHECKING:
    from .embeddings import EchoEmbeddings


class LateChunkingEmbeddings(Embeddings):
    """The embeddings of the chunks of ``documents``: each chunk's vector pools the echo second copy over the chunk's
    own tokens after one pass over its whole document (per window, for a document longer than the model reads), so
    it knows the document around it. Queries read as ``embeddings`` reads them. Make it with
    [EchoEmbeddings.late_chunking][langchain_echo.EchoEmbeddings.late_chunking]:

    ```python
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000).split_documents(documents)
    store = Chroma.from_documents(chunks, embeddings.late_chunking(documents), persist_directory="store")
    store = Chroma(embedding_function=embeddings, persist_directory="store")  # reopened: queries only
    hits = store.similarity_search("a question")  # chunks; their metadata names their document
    ```

    The chunks must come as a splitter gives them: in the documents' order, each document's in order, each a piece of
    its document's text. A store may embed them in several calls; each call continues where the last one stopped.
    A chunk that is not found next raises an InputError naming it, rather than a vector read in another document.
    """

    def __init__(self, embeddings: EchoEmbeddings, documents: Sequence[Document | str]) -> None:
        self.embeddings = embeddings
        self.texts = check_texts([d.page_content if isinstance(d, Document) else d for d in documents])
        self._next = (0, 0)  # the document the next chunk is searched in, and the character it is searched from
        self._chunks = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The late-chunked vectors of the next ``texts`` chunks, in order."""
        spans: dict[int, list[tuple[int, int]]] = {}
        rows = [self._place(text, spans) for text in check_texts(texts)]
        order = sorted(spans)
        vectors = self.embeddings.encoder.encode_chunks([self.texts[d] for d in order], [spans[d] for d in order])
        by_document = dict(zip(order, vectors, strict=True))
        return [by_document[d][k].tolist() for d, k in rows]

    def embed_query(self, text: str) -> list[float]:
        return self.embeddings.embed_query(text)

    def _place(self, chunk: str, spans: dict[int, list[tuple[int, int]]]) -> tuple[int, int]:
        """Where ``chunk`` lies: the next occurrence in the current document, else the first in a later one; added to
        ``spans``, and returned as (document, index in its spans)."""
        document, position = self._next
        while document < len(self.texts):
            start = self.texts[document].find(chunk, position) if chunk else -1
            if start >= 0:
                break
            document, position = document + 1, 0
        else:
            raise InputError(
                f"chunk {self._chunks} ({chunk!r:.60}) is not in documents[{self._next[0]}] after character "
                f"{self._next[1]}, nor in a later document: give each document's chunks in order, as its splitter "
                "made them"
            )
        self._next, self._chunks = (document, start + 1), self._chunks + 1
        spans.setdefault(document, []).append((start, start + len(chunk)))
        return document, len(spans[document]) - 1
