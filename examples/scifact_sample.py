"""The corpus every example indexes: SciFact abstracts and the claims that cite them, from the test fixtures
(``tests/data/mini``: a slice of BEIR SciFact, CC BY-NC 2.0; see its README)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[1] / "tests" / "data" / "mini" / "retrieval" / "scifact"


def abstracts(limit: int = 24) -> dict[str, str]:
    """The first ``limit`` abstracts cited by a test claim, then others, by document id: title and text."""
    corpus = {}
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            corpus[record["_id"]] = f"{record['title']} {record['text']}".strip()
    cited = [doc for doc in _qrels() if doc in corpus]
    chosen = list(dict.fromkeys(cited + sorted(corpus)))[:limit]
    return {doc: corpus[doc] for doc in chosen}


def claims(limit: int = 6) -> list[str]:
    """The first ``limit`` test claims whose cited abstract is among :func:`abstracts`."""
    qrels, docs = _qrels(), abstracts()
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        queries = {r["_id"]: r["text"] for r in map(json.loads, f)}
    wanted = [query for doc, query in qrels.items() if doc in docs and query in queries]
    return [queries[q] for q in dict.fromkeys(wanted)][:limit]


def _qrels() -> dict[str, str]:
    """Cited abstract -> the test claim citing it, in the qrels' order."""
    with open(SCIFACT / "qrels" / "test.tsv", encoding="utf-8") as f:
        return {row["corpus-id"]: row["query-id"] for row in csv.DictReader(f, delimiter="\t")}
