"""The documented training mix, built from the project's evaluation data folder (``../shared/data``).

| source | rows | anchor -> positive | negative | instruction |
|---|---|---|---|---|
| SNLI triplets ("AllNLI") | ``nli`` | premise -> entailed hypothesis | the contradiction | none (symmetric) |
| STS-B train, score >= 4 | ``stsb`` | sentence1 -> sentence2 | mined (zero-shot model) | none (symmetric) |
| STS-B train, every score | ``stsb-scores`` | graded pair: sentence1, sentence2, score / 5 (CoSENT) | none | none |
| SciFact train qrels | ``scifact`` | claim -> cited abstract | mined (zero-shot model) | SCIFACT_INSTRUCTION |
| Banking77 train | ``banking77`` | text -> another text of its intent | a text of another intent | none (symmetric) |

Graded STS-B pairs train the ranking of similarities directly (CoSENT), which InfoNCE's positives alone do not
teach: at the same 100 steps they lifted STS-B test most of all changes tried (see the README). Symmetric pairs
carry no instruction, so they train the document form that ``encode`` and every adapter's
document path use; SciFact's claims train the query form with the retrieval instruction. Banking77's negatives
come from another intent by construction: a mined neighbour would often be a text of the same intent. Only the
training splits are read; no reserved set.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..evaluation.retrieval import load_qrels
from ..evaluation.sts import load_sts
from ..files import read_records
from .data import TrainingRow

SCIFACT_INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim"

DEFAULT_ROWS = {"nli": 600, "stsb": 600, "scifact": 150, "banking77": 250, "stsb-scores": 1600}
"""Rows drawn from each source: the measured mix (STS-B train has 1,406 pairs with score >= 4 and 5,749 in all)."""

RECIPE_TEMPLATE = "echo"
"""The template the recipe is trained with unless one is given: echo (mean over the second copy). The zero-shot
default (echo-categorize) leads before training but not after it (docs/results/finetune/gpu-exploration)."""


def recipe_rows(data_dir: str | Path, *, rows: dict[str, int] | None = None, seed: int = 0) -> list[TrainingRow]:
    """The training mix: ``rows[source]`` rows from each source, drawn with ``random.Random(seed)``."""
    data_dir = Path(data_dir)
    counts = {**DEFAULT_ROWS, **(rows or {})}
    unknown = set(counts) - set(DEFAULT_ROWS)
    if unknown:
        raise ValueError(f"unknown recipe source(s) {sorted(unknown)}; sources: {', '.join(DEFAULT_ROWS)}")
    rng = random.Random(seed)
    sources = {"nli": _nli, "stsb": _stsb, "scifact": _scifact, "banking77": _banking77, "stsb-scores": _stsb_scores}
    mix: list[TrainingRow] = []
    for name, build in sources.items():
        if counts[name] > 0:
            candidates = build(data_dir, rng)
            mix.extend(rng.sample(candidates, min(counts[name], len(candidates))))
    return mix


def _nli(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    fields = {"anchor": str, "positive": str, "negative": str}
    records = read_records(data_dir / "nli" / "snli-train-triplets.jsonl", fields)
    return [TrainingRow(r["anchor"], r["positive"], (r["negative"],)) for r in records]


def _stsb(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    first, second, scores = load_sts(data_dir / "sts" / "stsb-train.jsonl")
    return [TrainingRow(a, b) for a, b, score in zip(first, second, scores, strict=True) if score >= 4]


def _stsb_scores(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    first, second, scores = load_sts(data_dir / "sts" / "stsb-train.jsonl")
    return [TrainingRow(a, b, score=score / 5) for a, b, score in zip(first, second, scores, strict=True)]


def _scifact(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    folder = data_dir / "retrieval" / "scifact"
    qrels = load_qrels(folder / "qrels" / "train.tsv")
    queries = {r["_id"]: r["text"] for r in read_records(folder / "queries.jsonl", {"_id": str, "text": str})}
    wanted = {doc for docs in qrels.values() for doc in docs}
    corpus = {
        r["_id"]: f"{r.get('title') or ''} {r['text']}".strip()
        for r in read_records(folder / "corpus.jsonl", {"_id": str, "text": str})
        if r["_id"] in wanted
    }
    return [
        TrainingRow(queries[query], corpus[doc], (), SCIFACT_INSTRUCTION)
        for query, docs in qrels.items()
        for doc, grade in docs.items()
        if grade > 0 and query in queries and doc in corpus
    ]


def _banking77(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    by_intent: dict[str, list[str]] = {}
    with open(data_dir / "classification" / "banking77" / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            by_intent.setdefault(record["label"], []).append(record["text"])
    intents = sorted(by_intent)
    rows = []
    for intent in intents:
        texts = by_intent[intent]
        for i in range(0, len(texts) - 1, 2):  # disjoint pairs, so no text is an anchor twice
            other = rng.choice([name for name in intents if name != intent])
            rows.append(TrainingRow(texts[i], texts[i + 1], (rng.choice(by_intent[other]),)))
    return rows
