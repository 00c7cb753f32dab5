"""Chunk retrieval with late-chunked vectors, as each framework's users index documents: chunks from the framework's
own splitter, stored with their vectors in Chroma on disk, the store reopened in a new process, and every hit mapped
back to its document (the recipes of docs/guide/long-inputs.md)."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from echo_embeddings import TruncationWarning
from echo_embeddings.errors import InputError
from echo_embeddings.late_chunking import find_spans, plan_windows, token_spans

from .conftest import DEVICE, stsb_sentences

pytestmark = pytest.mark.adapters

SETTINGS = {"device": DEVICE, "dtype": "float32", "template": "echo"}
DOCUMENTS = {f"doc-{i}": " ".join(stsb_sentences(60)[15 * i : 15 * i + 15]) for i in range(3)}
QUERIES = stsb_sentences(80)[60:64]


def reopened_hits(script: str, folder, model_dir) -> list:
    """What ``script`` prints (JSON) when run in a new process on the store in ``folder``."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(model_dir), json.dumps(QUERIES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def expected_chunks(encoder, starts: dict[str, list[int]], texts: dict[str, list[str]]) -> dict:
    """Each chunk's late-chunked vector computed by hand, by (document, start)."""
    out = {}
    for doc_id, chunk_texts in texts.items():
        spans = [(s, s + len(t)) for s, t in zip(starts[doc_id], chunk_texts, strict=True)]
        for (s, _), vector in zip(spans, encoder.encode_chunks([DOCUMENTS[doc_id]], [spans])[0], strict=True):
            out[(doc_id, s)] = vector
    return out


LANGCHAIN_REOPEN = """
import json, sys
from langchain_chroma import Chroma
from langchain_echo import EchoEmbeddings
folder, model, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
embeddings = EchoEmbeddings(model_name=model, device="cpu", dtype="float32", template="echo")
store = Chroma(collection_name="chunks-" + embeddings.fingerprint, embedding_function=embeddings,
               persist_directory=folder)
hits = [[[h.metadata["doc_id"], h.metadata["start_index"]] for h in store.similarity_search(q, k=3)] for q in queries]
print(json.dumps({"hits": hits, "stored": len(store.get()["ids"])}))
"""


def test_langchain_chunks_late_chunked_into_chroma_and_found_again(tiny_model_dir, tmp_path):
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from langchain_echo import EchoEmbeddings

    embeddings = EchoEmbeddings(model_name=str(tiny_model_dir), **SETTINGS)
    documents = [Document(page_content=text, metadata={"doc_id": d}) for d, text in DOCUMENTS.items()]
    splitter = RecursiveCharacterTextSplitter(chunk_size=200, chunk_overlap=40, add_start_index=True)
    chunks = splitter.split_documents(documents)
    folder = tmp_path / "store"
    store = Chroma.from_documents(
        chunks,
        embeddings.late_chunking(documents),
        collection_name=f"chunks-{embeddings.fingerprint}",
        persist_directory=str(folder),
    )
    stored = store.get(include=["embeddings", "metadatas"])
    starts, texts = {}, {}
    for chunk in chunks:
        starts.setdefault(chunk.metadata["doc_id"], []).append(chunk.metadata["start_index"])
        texts.setdefault(chunk.metadata["doc_id"], []).append(chunk.page_content)
    expected = expected_chunks(embeddings.encoder, starts, texts)
    assert len(stored["ids"]) == len(chunks) == len(expected) > 6
    for metadata, vector in zip(stored["metadatas"], stored["embeddings"], strict=True):
        np.testing.assert_allclose(vector, expected[(metadata["doc_id"], metadata["start_index"])], atol=1e-5)
    keys = list(expected)
    queries = embeddings.encoder.encode_queries(QUERIES)
    exact = [[list(keys[j]) for j in np.argsort(-row, kind="stable")[:3]] for row in queries @ np.stack(
        list(expected.values())).T]  # fmt: skip
    reopened = reopened_hits(LANGCHAIN_REOPEN, folder, tiny_model_dir)
    assert reopened == {"hits": exact, "stored": len(chunks)}


def test_langchain_late_chunking_names_a_chunk_out_of_order(tiny_model_dir):
    from langchain_echo import EchoEmbeddings

    late = EchoEmbeddings(model_name=str(tiny_model_dir), **SETTINGS).late_chunking(list(DOCUMENTS.values()))
    second, first = DOCUMENTS["doc-1"][:40], DOCUMENTS["doc-0"][:40]
    late.embed_documents([second])  # found in documents[1]
    with pytest.raises(InputError, match=r"chunk 1 \(.*\) is not in documents\[1\] after character 1, nor in a later"):
        late.embed_documents([first])


LLAMAINDEX_REOPEN = """
import json, sys
import chromadb
from llama_index.core import VectorStoreIndex
from llama_index.vector_stores.chroma import ChromaVectorStore
from llamaindex_echo import EchoEmbedding
folder, model, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
embed_model = EchoEmbedding(model_name=model, device="cpu", dtype="float32", template="echo")
collection = chromadb.PersistentClient(path=folder).get_collection("chunks-" + embed_model.fingerprint)
index = VectorStoreIndex.from_vector_store(ChromaVectorStore(chroma_collection=collection), embed_model=embed_model)
retriever = index.as_retriever(similarity_top_k=3)
hits = [[[h.node.ref_doc_id, h.node.start_char_idx] for h in retriever.retrieve(q)] for q in queries]
print(json.dumps({"hits": hits, "stored": collection.count()}))
"""


def test_llamaindex_nodes_late_chunked_into_chroma_and_found_again(tiny_model_dir, tmp_path):
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from llamaindex_echo import EchoEmbedding, EchoLateChunking

    embed_model = EchoEmbedding(model_name=str(tiny_model_dir), **SETTINGS)
    folder = tmp_path / "store"
    collection = chromadb.PersistentClient(path=str(folder)).create_collection(f"chunks-{embed_model.fingerprint}")
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    documents = [Document(text=text, id_=d) for d, text in DOCUMENTS.items()]
    late = EchoLateChunking(embed_model=embed_model, splitter=SentenceSplitter(chunk_size=48, chunk_overlap=8))
    VectorStoreIndex.from_documents(documents, transformations=[late], storage_context=storage, embed_model=embed_model)
    stored = collection.get(include=["embeddings", "metadatas"])
    nodes = late.splitter(documents)
    starts, texts = {}, {}
    for node in nodes:
        starts.setdefault(node.ref_doc_id, []).append(node.start_char_idx)
        texts.setdefault(node.ref_doc_id, []).append(node.get_content())
    expected = expected_chunks(embed_model.encoder, starts, texts)
    assert len(stored["ids"]) == len(nodes) == len(expected) > 6
    node_json = [json.loads(m["_node_content"]) for m in stored["metadatas"]]
    for metadata, content, vector in zip(stored["metadatas"], node_json, stored["embeddings"], strict=True):
        np.testing.assert_allclose(vector, expected[(metadata["ref_doc_id"], content["start_char_idx"])], atol=1e-5)
    keys = list(expected)
    queries = embed_model.encoder.encode_queries(QUERIES)
    exact = [[list(keys[j]) for j in np.argsort(-row, kind="stable")[:3]] for row in queries @ np.stack(
        list(expected.values())).T]  # fmt: skip
    assert reopened_hits(LLAMAINDEX_REOPEN, folder, tiny_model_dir) == {"hits": exact, "stored": len(nodes)}


def test_a_document_longer_than_the_model_reads_is_late_chunked_in_windows(tiny_model_dir):
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from langchain_echo import EchoEmbeddings

    embeddings = EchoEmbeddings(model_name=str(tiny_model_dir), max_text_tokens=64, **SETTINGS)
    document = " ".join(stsb_sentences(40))
    chunks = RecursiveCharacterTextSplitter(chunk_size=150, chunk_overlap=0).split_documents([Document(document)])
    texts = [chunk.page_content for chunk in chunks]
    spans = find_spans(document, texts)
    ids, offsets = embeddings.encoder.template_tokenizer.with_offsets(document)
    windows = plan_windows(token_spans(offsets, spans, 0), len(ids), embeddings.encoder.max_text_tokens)
    assert len(ids) > 4 * 64 and len(windows) > 4 and not any(w.truncated for w in windows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # every chunk is read whole, in a window that holds it
        vectors = embeddings.late_chunking([document]).embed_documents(texts)
    np.testing.assert_allclose(vectors, embeddings.encoder.encode_chunks([document], [spans])[0], atol=1e-5)
    alone = embeddings.encoder.encode_documents(texts)
    assert (np.sum(np.asarray(vectors) * alone, axis=1) < 0.9999).any()  # the windows' context reached the chunks


def test_a_marked_span_trains_as_late_chunking_reads_it(tiny_model_dir):
    """The sentence-transformers module (what training runs) pools a marked span of a whole document exactly as
    encode_chunks pools that chunk, and a text without marks reads as before."""
    from echo_embeddings import EchoEncoder, sentence_transformer
    from echo_embeddings.late_chunking import SPAN_END, mark_span

    settings = dict(device=DEVICE, dtype="float32", template="echo", pooling="mean")
    encoder = EchoEncoder.from_pretrained(str(tiny_model_dir), **settings)
    model = sentence_transformer(str(tiny_model_dir), **settings)
    document = " ".join(stsb_sentences(6))
    chunks = stsb_sentences(6)[1:4:2]
    spans = find_spans(document, chunks)
    expected = encoder.encode_chunks([document], [spans])[0]
    marked = [mark_span(document, span) for span in spans]
    got = model.encode([*marked, document], convert_to_numpy=True, normalize_embeddings=False)
    np.testing.assert_allclose(got[:2], expected, atol=1e-5)
    np.testing.assert_allclose(got[2], encoder.encode([document])[0], atol=1e-5)
    with pytest.raises(InputError, match=r"inputs\[0\]: a marked span needs one SPAN_START before one SPAN_END"):
        model.encode([document + SPAN_END])
    short = sentence_transformer(str(tiny_model_dir), max_text_tokens=8, **settings)
    with pytest.raises(InputError, match=r"inputs\[0\]: the marked span ends at token \d+ of the text, past the 8"):
        short.encode([marked[1]])


def test_training_rows_with_wrong_marks_are_named(tmp_path):
    from echo_embeddings.errors import TrainingDataError
    from echo_embeddings.late_chunking import SPAN_END, SPAN_START
    from echo_embeddings.training import read_training_rows

    path = tmp_path / "rows.jsonl"
    good = {"anchor": "a claim", "positive": f"one {SPAN_START}two{SPAN_END} three"}
    bad = {"anchor": "a claim", "positive": "one", "negative": f"{SPAN_END}two{SPAN_START}"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"rows.jsonl:2: 'negative' marks a span wrongly"):
        read_training_rows([path])
