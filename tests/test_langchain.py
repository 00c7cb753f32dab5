"""The LangChain adapter: the standard langchain-tests suites, retrieval through a vector store, bad input."""

import asyncio
import math

import numpy as np
import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from echo_embeddings import TruncationWarning
from langchain_echo import EchoEmbeddings

from .conftest import LATE_INFORMATION


class TestEchoEmbeddingsUnit(EmbeddingsUnitTests):
    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_model_dir):
        self.model_dir = str(tiny_model_dir)

    @property
    def embeddings_class(self) -> type[EchoEmbeddings]:
        return EchoEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": self.model_dir, "device": "cpu"}


class TestEchoEmbeddingsIntegration(EmbeddingsIntegrationTests):
    """On the default model, with no arguments: offline."""

    @property
    def embeddings_class(self) -> type[EchoEmbeddings]:
        return EchoEmbeddings


@pytest.fixture(scope="module")
def default_embeddings(default_encoder) -> EchoEmbeddings:
    return EchoEmbeddings()


@pytest.fixture(scope="module")
def tiny_embeddings(tiny_model_dir) -> EchoEmbeddings:
    return EchoEmbeddings(model_name=str(tiny_model_dir), device="cpu")


def test_vector_store_retrieves_by_late_information(default_embeddings):
    store = InMemoryVectorStore.from_texts([pair["document"] for pair in LATE_INFORMATION], default_embeddings)
    retriever = store.as_retriever(search_kwargs={"k": 1})
    hits = [retriever.invoke(pair["query"])[0].page_content == pair["document"] for pair in LATE_INFORMATION]
    assert all(hits), hits


def test_shares_the_loaded_model(default_encoder, default_embeddings):
    again = EchoEmbeddings(template="classical")
    assert again.encoder.model is default_embeddings.encoder.model is default_encoder.model


def test_query_and_document_forms(tiny_model_dir):
    embeddings = EchoEmbeddings(model=str(tiny_model_dir), device="cpu", template="echo-instruct")
    instructed = EchoEmbeddings(
        model=str(tiny_model_dir), device="cpu", template="echo-instruct", query_instruction="Find recipes"
    )
    doc = embeddings.embed_documents(["apple pie"])[0]
    query = embeddings.embed_query("apple pie")
    assert doc != query and query != instructed.embed_query("apple pie")
    assert embeddings.encoder.encode_queries(["apple pie"])[0].tolist() == query


def test_bad_inputs(tiny_embeddings):
    assert tiny_embeddings.embed_documents([]) == []
    (empty,) = tiny_embeddings.embed_documents([""])
    assert all(math.isfinite(x) for x in empty)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        tiny_embeddings.embed_documents(["fine", 3])
    with pytest.raises(TypeError, match="the query is NoneType"):
        tiny_embeddings.embed_query(None)
    with pytest.warns(TruncationWarning, match="1 of 1 texts"):
        (long,) = tiny_embeddings.embed_documents(["word " * 5000])
    assert len(long) == len(empty)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"template": "nope"}, "unknown template 'nope'"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"batch_size": True}, "valid integer"),
        ({"max_length": -1}, "greater than or equal to 1"),
        ({"pooling": "max"}, "'mean', 'last', 'mean-last' or 'mean\\+last'"),
        ({"pooling": ""}, "'mean', 'last', 'mean-last' or 'mean\\+last'"),
        ({"normalise": True}, "Extra inputs are not permitted"),
        ({"normalize": True, "normalize_embeddings": False}, "'normalize_embeddings' and 'normalize' are the same"),
        ({"model_kwargs": {"device": "cpu"}}, "use device= instead"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        EchoEmbeddings(**kwargs)


def test_langchain_names_are_aliases(tiny_model_dir, tiny_embeddings):
    raw = EchoEmbeddings(model=str(tiny_model_dir), device="cpu", normalize_embeddings=False)
    assert raw.model_name == str(tiny_model_dir) and raw.normalize is False
    vector = np.array(raw.embed_documents(["a sentence"])[0])
    assert abs(np.linalg.norm(vector) - 1) > 1e-3
    np.testing.assert_allclose(
        vector / np.linalg.norm(vector), tiny_embeddings.embed_documents(["a sentence"])[0], atol=1e-5
    )


async def test_async_matches_sync_and_does_not_block_the_loop(tiny_embeddings):
    texts = [f"sentence number {i} about something" for i in range(300)]
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    vectors = await tiny_embeddings.aembed_documents(texts)
    task.cancel()
    assert ticks > 5, "the event loop was blocked while embedding"
    assert vectors == tiny_embeddings.embed_documents(texts)
    queries = await asyncio.gather(*(tiny_embeddings.aembed_query(t) for t in texts[:8]))
    assert queries == [tiny_embeddings.embed_query(t) for t in texts[:8]]
