"""The documented training mix, built from the project's evaluation data folder (``../shared/data``).

| source | rows | anchor -> positive | negative | instruction (``instructions="task"``) |
|---|---|---|---|---|
| SNLI triplets ("AllNLI") | ``nli`` | premise -> entailed hypothesis | the contradiction | nli |
| STS-B train, score >= 4 | ``stsb`` | sentence1 -> sentence2 | mined (zero-shot model) | sts |
| STS-B train, every score | ``stsb-scores`` | graded pair: sentence1, sentence2, score / 5 (CoSENT) | none | none |
| SciFact train qrels | ``scifact`` | claim -> cited abstract | mined (zero-shot model) | scifact |
| Banking77 train | ``banking77`` | text -> another text of its intent | a text of another intent | banking77 |
| SciFact, late-chunked | ``scifact-late`` | claim -> its abstract among three in one text | the other two | scifact |

Instructions are [INSTRUCTIONS][echo_embeddings.instructions.INSTRUCTIONS]' texts, on the anchor only (the query
form); positives and negatives are documents, which carry none. ``instructions="scifact"`` is the mix of release
0.2: only SciFact's claims carry one. ``general_share`` of the SciFact claims carry the general instruction instead
of SciFact's, so that the general instruction the default model's queries carry is trained. Graded STS-B pairs
(CoSENT) train the ranking of similarities directly and stay symmetric: both texts are documents. Banking77's
negatives come from another intent by construction: a mined neighbour would often be a text of the same intent.
``scifact-late`` (not in the default mix) trains on chunks pooled inside their document: each claim's abstract is
put among two others in one document, the positive is that document with the abstract marked
([mark_span][echo_embeddings.late_chunking.mark_span]) and the negatives are the same document with each other
abstract marked, so the model learns to tell a passage from its neighbours in one pass over the document.

Only training splits are read, and each fifth SciFact train claim and Banking77 train text is held out of the mix
([scifact_dev_queries][], [banking77_dev][]): the development data the recipe's choices are made on. No reserved
set.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from ..evaluation.retrieval import load_qrels
from ..evaluation.sts import load_sts
from ..files import read_records
from ..instructions import GENERAL_INSTRUCTION, INSTRUCTIONS
from ..late_chunking import find_spans, mark_span
from .data import TrainingRow

DEV_EVERY = 5
"""Every this many'th SciFact train claim (by id) and Banking77 train text (by line) is development data."""

SOURCE_INSTRUCTIONS = {
    "nli": "nli",
    "stsb": "sts",
    "stsb-scores": None,
    "scifact": "scifact",
    "banking77": "banking77",
    "scifact-late": "scifact",
}
"""The instruction (a name of INSTRUCTIONS) each source's anchors carry with ``instructions="task"``."""

DEFAULT_ROWS = {"nli": 1800, "stsb": 1400, "scifact": 450, "banking77": 750, "stsb-scores": 4800, "scifact-late": 0}
"""Rows drawn from each source: the shipped mix, for 300 steps of 16 (STS-B train has 1,406 pairs with score >= 4
and 5,749 in all; release 0.2's 100 steps drew a third of each: 600, 600, 150, 250, 1,600)."""

DEFAULT_GENERAL_SHARE = 0.5
"""The share of SciFact's claims trained with the general instruction: the shipped recipe's."""

RECIPE_TEMPLATE = "echo"
"""The template the recipe is trained with unless one is given: echo (mean over the second copy). The zero-shot
default (echo-categorize) leads before training but not after it (docs/results/finetune/gpu-exploration)."""


def recipe_rows(
    data_dir: str | Path,
    *,
    rows: dict[str, int] | None = None,
    seed: int = 0,
    instructions: Literal["task", "scifact"] = "task",
    general_share: float = DEFAULT_GENERAL_SHARE,
) -> list[TrainingRow]:
    """The training mix: ``rows[source]`` rows from each source, drawn with ``random.Random(seed)``; anchors carry
    each source's instruction (``"task"``) or only SciFact's (``"scifact"``), and ``general_share`` of SciFact's
    claims the general instruction instead."""
    data_dir = Path(data_dir)
    counts = {**DEFAULT_ROWS, **(rows or {})}
    unknown = set(counts) - set(DEFAULT_ROWS)
    if unknown:
        raise ValueError(f"unknown recipe source(s) {sorted(unknown)}; sources: {', '.join(DEFAULT_ROWS)}")
    if instructions not in ("task", "scifact"):
        raise ValueError(f"instructions: 'task' or 'scifact', got {instructions!r}")
    if not 0 <= general_share <= 1:
        raise ValueError(f"general_share: a share from 0 to 1, got {general_share}")
    rng = random.Random(seed)
    sources = {"nli": _nli, "stsb": _stsb, "scifact": _scifact, "banking77": _banking77, "stsb-scores": _stsb_scores,
               "scifact-late": _scifact_late}  # fmt: skip
    mix: list[TrainingRow] = []
    for name, build in sources.items():
        if counts[name] > 0:
            candidates = build(data_dir, rng)
            drawn = rng.sample(candidates, min(counts[name], len(candidates)))
            mix.extend(_instructed(drawn, name, instructions, general_share, rng))
    return mix


def _instructed(
    rows: list[TrainingRow], source: str, instructions: str, general_share: float, rng: random.Random
) -> list[TrainingRow]:
    claims = source in ("scifact", "scifact-late")
    name = SOURCE_INSTRUCTIONS[source] if instructions == "task" or claims else None
    if name is None:
        return rows
    general = set(rng.sample(range(len(rows)), round(general_share * len(rows)))) if claims else set()
    return [
        TrainingRow(
            row.anchor, row.positive, row.negatives, GENERAL_INSTRUCTION if i in general else INSTRUCTIONS[name]
        )
        for i, row in enumerate(rows)
    ]


def scifact_dev_queries(data_dir: str | Path) -> set[str]:
    """The SciFact train claims held out of the mix: each DEV_EVERY'th of the judged ones, by numeric id."""
    qrels = load_qrels(Path(data_dir) / "retrieval" / "scifact" / "qrels" / "train.tsv")
    return set(sorted(qrels, key=int)[::DEV_EVERY])


def banking77_dev(data_dir: str | Path) -> list[dict]:
    """The Banking77 train records held out of the mix: each DEV_EVERY'th line."""
    return _banking77_records(data_dir)[::DEV_EVERY]


def _banking77_records(data_dir: str | Path) -> list[dict]:
    path = Path(data_dir) / "classification" / "banking77" / "train.jsonl"
    return list(read_records(path, {"text": str, "label": (str, int)}))


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
    qrels, queries, corpus, _ = _scifact_train(data_dir)
    return [
        TrainingRow(queries[query], corpus[doc])
        for query, docs in qrels.items()
        for doc, grade in docs.items()
        if grade > 0 and query in queries and doc in corpus
    ]


def _scifact_late(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    qrels, queries, corpus, dev_abstracts = _scifact_train(data_dir)
    fillers = sorted(doc for doc in corpus if doc not in dev_abstracts)
    rows = []
    for query, docs in qrels.items():
        for doc, grade in docs.items():
            if grade <= 0 or query not in queries or doc not in corpus:
                continue
            parts = [doc, *rng.sample([d for d in fillers if d not in docs], 2)]
            rng.shuffle(parts)
            texts = [corpus[d] for d in parts]
            document = "\n\n".join(texts)
            marked = [mark_span(document, span) for span in find_spans(document, texts)]
            positive = parts.index(doc)
            rows.append(
                TrainingRow(queries[query], marked[positive], tuple(marked[:positive] + marked[positive + 1 :]))
            )
    return rows


def _scifact_train(
    data_dir: Path,
) -> tuple[dict[str, dict[str, int]], dict[str, str], dict[str, str], set[str]]:
    """The non-development SciFact train qrels, the claims' texts, the corpus (``title + " " + text``) of the
    abstracts every train claim cites, and the abstracts the development claims cite."""
    folder = data_dir / "retrieval" / "scifact"
    every = load_qrels(folder / "qrels" / "train.tsv")
    held_out = scifact_dev_queries(data_dir)
    qrels = {query: docs for query, docs in every.items() if query not in held_out}
    queries = {r["_id"]: r["text"] for r in read_records(folder / "queries.jsonl", {"_id": str, "text": str})}
    wanted = {doc for docs in every.values() for doc in docs}
    corpus = {
        r["_id"]: f"{r.get('title') or ''} {r['text']}".strip()
        for r in read_records(folder / "corpus.jsonl", {"_id": str, "text": str})
        if r["_id"] in wanted
    }
    dev_abstracts = {doc for query in held_out for doc in every.get(query, {})}
    return qrels, queries, corpus, dev_abstracts


def _banking77(data_dir: Path, rng: random.Random) -> list[TrainingRow]:
    by_intent: dict[str, list[str]] = {}
    for i, record in enumerate(_banking77_records(data_dir)):
        if i % DEV_EVERY:  # the rest is development data
            by_intent.setdefault(str(record["label"]), []).append(record["text"])
    intents = sorted(by_intent)
    rows = []
    for intent in intents:
        texts = by_intent[intent]
        for i in range(0, len(texts) - 1, 2):  # disjoint pairs, so no text is an anchor twice
            other = rng.choice([name for name in intents if name != intent])
            rows.append(TrainingRow(texts[i], texts[i + 1], (rng.choice(by_intent[other]),)))
    return rows
