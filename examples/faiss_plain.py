"""FAISS for a plain Python user: SciFact abstracts in an exact inner-product index on disk, and the same abstracts
in a binary (1 bit a dimension, 32x smaller) index searched by Hamming distance.

    python examples/faiss_plain.py STORE_FOLDER

The first run embeds the abstracts and writes STORE_FOLDER/scifact-<fingerprint>.faiss (and .binary.faiss, and the
document ids); later runs read them and embed only the claims.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import faiss
from scifact_sample import abstracts, claims
from sentence_transformers.util import quantize_embeddings

from echo_embeddings import EchoEncoder


def main(folder: Path) -> None:
    encoder = EchoEncoder.from_pretrained()
    name = folder / f"scifact-{encoder.fingerprint}"
    ids_file = name.with_suffix(".ids.json")
    if not ids_file.exists():
        docs = abstracts()
        vectors = encoder.encode_documents(list(docs.values()))
        index = faiss.IndexFlatIP(encoder.dim)  # unit vectors: inner product is cosine
        index.add(vectors)
        bits = faiss.IndexBinaryFlat(encoder.dim)
        bits.add(quantize_embeddings(vectors, "ubinary"))  # sentence-transformers' quantization
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(name.with_suffix(".faiss")))
        faiss.write_index_binary(bits, str(name.with_suffix(".binary.faiss")))
        ids_file.write_text(json.dumps(list(docs)))
    index = faiss.read_index(str(name.with_suffix(".faiss")))
    bits = faiss.read_index_binary(str(name.with_suffix(".binary.faiss")))
    ids = json.loads(ids_file.read_text())
    queries = claims()
    vectors = encoder.encode_queries(queries)
    _, found = index.search(vectors, 5)
    _, found_bits = bits.search(quantize_embeddings(vectors, "ubinary"), 5)
    for claim, row, row_bits in zip(queries, found, found_bits, strict=True):
        hits, hits_bits = [ids[i] for i in row], [ids[i] for i in row_bits]
        print(json.dumps({"claim": claim, "hits": hits, "binary_hits": hits_bits}))
    print(json.dumps({"stored": index.ntotal}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
