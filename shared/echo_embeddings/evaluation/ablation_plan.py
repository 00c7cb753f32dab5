"""What an ablations run covers: its sections and how much of each set it reads. No torch, so the command line's
parser can offer them as options."""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("prompts", "copies", "bidirectional", "toy", "candidates", "models")
"""The sections of a run, in order. ``models`` is the other models' references; the model's own row there comes
from ``candidates``, which scores the references and the finalist on the test sets."""


@dataclass(frozen=True)
class Sizes:
    """How much of each set is read (the CPU budget). Development: the first ``sts_pairs`` STS-B dev pairs, the
    first ``queries`` judged SciFact train queries against their abstracts plus ``corpus_others`` others, and
    ``per_intent`` Banking77 train texts per intent to fit the probe and the next ``per_intent`` to score it.
    Test: all STS-B test pairs, the first ``test_queries`` SciFact test queries plus ``test_corpus_others``
    others, and ``test_per_intent`` texts per intent of Banking77 train (fit) and test (score)."""

    sts_pairs: int = 300
    queries: int = 30
    corpus_others: int = 60
    per_intent: int = 4
    test_queries: int = 50
    test_corpus_others: int = 100
    test_per_intent: int = 8
