"""The paper's Section 3 experiment: is cos(q, s+) > cos(q, s-) for each structure of triples?"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import read_records
from .arm import Arm
from .report import Result


def evaluate_toy(arms: list[Arm], path: Path) -> list[Result]:
    """Accuracy per structure (and over all triples) for each arm; JSONL fields ``q``, ``s+``, ``s-``, ``structure``."""
    triples = list(read_records(path, {"q": str, "s+": str, "s-": str, "structure": str}))
    if not triples:
        raise InputError(f"{path}: no triples")
    structures = sorted({t["structure"] for t in triples})
    results = []
    for arm in arms:
        start = time.perf_counter()
        q, pos, neg = (arm.encode([t[key] for t in triples]) for key in ("q", "s+", "s-"))
        seconds = time.perf_counter() - start
        wins = (q * pos).sum(1) > (q * neg).sum(1)
        labels = np.array([t["structure"] for t in triples])
        for structure in [*structures, "all"]:
            chosen = wins if structure == "all" else wins[labels == structure]
            results.append(
                Result("toy", structure, arm.name, arm.pooling, "accuracy", 100 * float(chosen.mean()),
                       int(chosen.size), seconds, 3 * len(triples) / seconds)
            )  # fmt: skip
    return results
