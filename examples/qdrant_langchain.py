"""LangChain + Qdrant in local on-disk mode: index SciFact abstracts once, then reopen the store and search it.

    python examples/qdrant_langchain.py STORE_FOLDER

The first run embeds the abstracts into STORE_FOLDER; later runs reopen it and embed only the claims. The collection
is named after the embeddings' settings fingerprint, so other settings never read these vectors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_qdrant import QdrantVectorStore
from scifact_sample import abstracts, claims

from langchain_echo import EchoEmbeddings


def main(folder: Path) -> None:
    embeddings = EchoEmbeddings()
    collection = f"scifact-{embeddings.fingerprint}"
    if folder.exists():
        store = QdrantVectorStore.from_existing_collection(
            embedding=embeddings, collection_name=collection, path=str(folder)
        )
    else:
        docs = abstracts()
        store = QdrantVectorStore.from_texts(
            list(docs.values()),
            embeddings,
            metadatas=[{"doc_id": d} for d in docs],
            collection_name=collection,
            path=str(folder),
        )
    for claim in claims():
        hits = store.similarity_search(claim, k=5)
        print(json.dumps({"claim": claim, "hits": [hit.metadata["doc_id"] for hit in hits]}))
    print(json.dumps({"stored": store.client.count(collection).count}))
    store.client.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
