"""Classification as MTEB scores it: a logistic-regression probe on the embeddings, accuracy x100.

For a CPU, both splits can be cut to the first ``train_per_label`` / ``test_per_label`` texts of each label (in
file order, so the same arguments always give the same texts).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import read_records
from .arm import Arm
from .report import Result


def load_labelled(path: Path, per_label: int | None = None, skip_per_label: int = 0) -> tuple[list[str], list[str]]:
    """``text`` and ``label`` columns of a JSONL file, at most ``per_label`` texts of each label after its first
    ``skip_per_label`` (so one file gives disjoint parts)."""
    texts: list[str] = []
    labels: list[str] = []
    seen: dict[str, int] = {}
    for record in read_records(path, {"text": str, "label": (str, int)}):
        label = str(record["label"])
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > skip_per_label and (per_label is None or seen[label] <= skip_per_label + per_label):
            texts.append(record["text"])
            labels.append(label)
    if len(set(labels)) < 2:
        raise InputError(f"{path}: classification needs at least 2 labels, found {len(set(labels))}")
    return texts, labels


def evaluate_classification(
    arms: list[Arm],
    train: Path,
    test: Path,
    train_per_label: int | None = None,
    test_per_label: int | None = None,
    show_progress: bool = False,
    test_skip_per_label: int = 0,
) -> list[Result]:
    """Probe accuracy per arm. ``test_skip_per_label`` skips each label's first texts of ``test``: with
    ``test == train`` and ``train_per_label``, the probe is scored on other texts of the training split."""
    from sklearn.linear_model import LogisticRegression

    train_texts, train_labels = load_labelled(train, train_per_label)
    test_texts, test_labels = load_labelled(test, test_per_label, test_skip_per_label)
    dataset = Path(test).parent.name + (f"[{len(train_texts)}/{len(test_texts)}]" if train_per_label else "")
    results = []
    for arm in arms:
        start = time.perf_counter()
        train_vectors = arm.encode(train_texts, show_progress=show_progress)
        test_vectors = arm.encode(test_texts, show_progress=show_progress)
        seconds = time.perf_counter() - start
        probe = LogisticRegression(max_iter=1000).fit(train_vectors, train_labels)
        accuracy = float(np.mean(probe.predict(test_vectors) == np.array(test_labels)))
        results.append(
            Result("classification", dataset, arm.name, arm.pooling, "accuracy", 100 * accuracy,
                   len(test_texts), seconds, (len(train_texts) + len(test_texts)) / seconds)
        )  # fmt: skip
    return results
