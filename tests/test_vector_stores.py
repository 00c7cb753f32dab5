"""Echo vectors in real vector stores, as their users start them: every example in examples/ indexes SciFact
abstracts on disk with the default model, then runs again in a new process that reopens the store; both runs find
the same abstracts as exact search over the same vectors, queries read in the query form."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from echo_embeddings import EchoEncoder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
from scifact_sample import abstracts, claims  # noqa: E402

STORES = ["chroma_langchain", "qdrant_langchain", "chroma_llamaindex", "qdrant_llamaindex", "faiss_plain"]


@pytest.fixture(scope="module")
def exact_hits(default_encoder: EchoEncoder) -> dict[str, list[str]]:
    """Each claim's five nearest abstracts by exact cosine search, documents and claims each in their own form."""
    docs = abstracts()
    ids = list(docs)
    scores = default_encoder.encode_queries(claims()) @ default_encoder.encode_documents(list(docs.values())).T
    return {
        claim: [ids[i] for i in np.argsort(-row, kind="stable")[:5]]
        for claim, row in zip(claims(), scores, strict=True)
    }


def run(example: str, folder: Path) -> tuple[list[dict], int]:
    """The example's results and how many vectors its store holds."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{example}.py"), str(folder)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return lines[:-1], lines[-1]["stored"]


@pytest.mark.parametrize("example", STORES)
def test_a_persisted_store_reopened_in_a_new_process_finds_the_exact_hits(example, exact_hits, tmp_path):
    folder = tmp_path / "store"
    first, stored = run(example, folder)
    assert folder.exists() and stored == len(abstracts())
    again, stored_again = run(example, folder)  # reopens: embeds only the claims, adds nothing
    assert stored_again == stored and again == first
    assert [row["claim"] for row in first] == claims()
    for row in first:
        assert row["hits"] == exact_hits[row["claim"]], row["claim"]
    if example == "faiss_plain":  # 1 bit a dimension keeps most of the ranking
        kept = np.mean([row["binary_hits"][0] in row["hits"] for row in first])
        assert kept >= 0.5, kept
