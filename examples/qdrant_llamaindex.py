"""LlamaIndex + Qdrant in local on-disk mode: index SciFact abstracts once, then reopen the index and retrieve.

    python examples/qdrant_llamaindex.py STORE_FOLDER

The first run embeds the abstracts (one node each) into STORE_FOLDER; later runs reopen it and embed only the
claims. The collection is named after the embedding's settings fingerprint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from scifact_sample import abstracts, claims

from llamaindex_echo import EchoEmbedding


def main(folder: Path) -> None:
    embed_model = EchoEmbedding()
    new = not folder.exists()
    client = QdrantClient(path=str(folder))
    store = QdrantVectorStore(client=client, collection_name=f"scifact-{embed_model.fingerprint}")
    if new:
        nodes = [  # one node per abstract; its id is not part of the text embedded
            TextNode(text=text, metadata={"doc_id": d}, excluded_embed_metadata_keys=["doc_id"])
            for d, text in abstracts().items()
        ]
        storage = StorageContext.from_defaults(vector_store=store)
        index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed_model)
    else:
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=5)
    for claim in claims():
        hits = retriever.retrieve(claim)
        print(json.dumps({"claim": claim, "hits": [hit.node.metadata["doc_id"] for hit in hits]}))
    print(json.dumps({"stored": client.count(store.collection_name).count}))
    client.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
