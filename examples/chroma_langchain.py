"""LangChain + Chroma, persisted on disk: index SciFact abstracts once, then reopen the store and search it.

    python examples/chroma_langchain.py STORE_FOLDER

The first run embeds the abstracts into STORE_FOLDER; later runs reopen it and embed only the claims. The collection
is named after the embeddings' settings fingerprint, so other settings never read these vectors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langchain_chroma import Chroma
from scifact_sample import abstracts, claims

from langchain_echo import EchoEmbeddings


def main(folder: Path) -> None:
    embeddings = EchoEmbeddings()
    collection = f"scifact-{embeddings.fingerprint}"
    new = not folder.exists()
    store = Chroma(collection_name=collection, embedding_function=embeddings, persist_directory=str(folder))
    if new:
        docs = abstracts()
        store.add_texts(list(docs.values()), metadatas=[{"doc_id": d} for d in docs], ids=list(docs))
    for claim in claims():
        hits = store.similarity_search(claim, k=5)
        print(json.dumps({"claim": claim, "hits": [hit.metadata["doc_id"] for hit in hits]}))
    print(json.dumps({"stored": len(store.get()["ids"])}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
