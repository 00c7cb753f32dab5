"""The LlamaIndex adapter: VectorStoreIndex retrieval, real batching, async, serialization, bad input."""

import math
import pickle

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from pydantic import ValidationError

from echo_embeddings import TruncationWarning
from llamaindex_echo import EchoEmbedding

from .conftest import LATE_INFORMATION


@pytest.fixture(scope="module")
def tiny_embedding(tiny_model_dir) -> EchoEmbedding:
    return EchoEmbedding(model_name=str(tiny_model_dir), device="cpu", embed_batch_size=4)


def encode_call_sizes(embedding: EchoEmbedding, monkeypatch) -> list[int]:
    """The number of texts in each call the adapter makes to its encoder (a pass may pack them into fewer rows)."""
    sizes: list[int] = []
    encoder, encode = embedding.encoder, embedding.encoder.encode

    def recorded(texts, **options):
        sizes.append(len(texts))
        return encode(texts, **options)

    monkeypatch.setattr(encoder, "encode", recorded)
    return sizes


def test_vector_store_index_retrieves_by_late_information(default_encoder, monkeypatch):
    monkeypatch.setattr(Settings, "_embed_model", None)
    Settings.embed_model = EchoEmbedding()
    documents = [Document(text=pair["document"]) for pair in LATE_INFORMATION]
    retriever = VectorStoreIndex.from_documents(documents).as_retriever(similarity_top_k=1)
    hits = [retriever.retrieve(pair["query"])[0].node.get_content() == pair["document"] for pair in LATE_INFORMATION]
    assert all(hits), hits


def test_texts_are_embedded_in_batches(tiny_embedding, monkeypatch):
    sizes = encode_call_sizes(tiny_embedding, monkeypatch)
    vectors = tiny_embedding.get_text_embedding_batch([f"text number {i}" for i in range(10)], show_progress=True)
    assert len(vectors) == 10
    assert sorted(sizes, reverse=True) == [4, 4, 2]


async def test_async_batch_equals_sync(tiny_embedding):
    texts = [f"a sentence about topic {i}" for i in range(9)]
    assert await tiny_embedding.aget_text_embedding_batch(texts) == tiny_embedding.get_text_embedding_batch(texts)
    assert await tiny_embedding.aget_query_embedding("q") == tiny_embedding.get_query_embedding("q")
    assert await tiny_embedding.aget_text_embedding("t") == tiny_embedding.get_text_embedding("t")


def test_query_and_text_instructions(tiny_model_dir):
    plain = EchoEmbedding(model_name=str(tiny_model_dir), device="cpu", template="echo-instruct")
    instructed = EchoEmbedding(
        model_name=str(tiny_model_dir),
        device="cpu",
        template="echo-instruct",
        query_instruction="Find recipes",
        text_instruction="A recipe: ",
    )
    assert plain.get_query_embedding("pie") != plain.get_text_embedding("pie")
    assert plain.get_query_embedding("pie") != instructed.get_query_embedding("pie")
    assert plain.get_text_embedding("pie") != instructed.get_text_embedding("pie")


def test_pickle_and_dict_round_trips_reuse_the_model(tiny_embedding):
    assert EchoEmbedding.class_name() == "EchoEmbedding"
    restored = pickle.loads(pickle.dumps(tiny_embedding))
    assert restored.encoder.model is tiny_embedding.encoder.model
    assert restored.get_text_embedding("x") == tiny_embedding.get_text_embedding("x")
    data = tiny_embedding.to_dict()
    assert data["class_name"] == "EchoEmbedding" and data["embed_batch_size"] == 4
    rebuilt = EchoEmbedding.from_dict(data)
    assert rebuilt.encoder.model is tiny_embedding.encoder.model
    assert rebuilt.get_query_embedding("y") == tiny_embedding.get_query_embedding("y")


def test_bad_inputs(tiny_embedding):
    assert tiny_embedding.get_text_embedding_batch([]) == []
    (empty,) = tiny_embedding.get_text_embedding_batch([""])
    assert all(math.isfinite(x) for x in empty)
    with pytest.raises(TypeError, match=r"texts\[9\] is int"):
        tiny_embedding.get_text_embedding_batch([f"t{i}" for i in range(9)] + [7])
    with pytest.warns(TruncationWarning, match="1 of 1 texts"):
        long = tiny_embedding.get_text_embedding("word " * 5000)
    assert len(long) == len(empty)


async def test_async_bad_inputs_name_the_index(tiny_embedding):
    with pytest.raises(TypeError, match=r"texts\[5\] is bytes"):
        await tiny_embedding.aget_text_embedding_batch(["a", "b", "c", "d", "e", b"f"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"template": "nope"}, "unknown template 'nope'"),
        ({"embed_batch_size": 0}, "greater than or equal to 1"),
        ({"embed_batch_size": 5000}, "less than or equal to 2048"),
        ({"batch_size": 8, "embed_batch_size": 16}, "'embed_batch_size' and 'batch_size' are the same setting"),
        ({"pooling": "cls"}, "'mean', 'last', 'mean-last' or 'mean\\+last'"),
        ({"normalize_embeddings": False}, "Extra inputs are not permitted"),
        ({"model_kwargs": {"device": "cpu"}}, "use device= instead"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        EchoEmbedding(**kwargs)


def test_batch_size_names(tiny_model_dir):
    for kwargs in ({"embed_batch_size": 6}, {"batch_size": 6}):
        embedding = EchoEmbedding(model_name=str(tiny_model_dir), device="cpu", **kwargs)
        assert embedding.embed_batch_size == embedding.batch_size == embedding.encoder.config.batch_size == 6
    default = EchoEmbedding(model_name=str(tiny_model_dir), device="cpu")
    assert default.embed_batch_size == default.batch_size == 32


def test_query_and_text_must_be_strings(tiny_embedding):
    with pytest.raises(TypeError, match="the query is NoneType"):
        tiny_embedding.get_query_embedding(None)
    with pytest.raises(TypeError, match="the text is int"):
        tiny_embedding.get_text_embedding(3)
