"""Rebuild tests/data/mini from the project's evaluation data (run once; the tests read only the result).

    python tests/data/make_mini.py ../shared/data

Slices, in the same layout as the full data, small enough to ship: the tests' tokenizer is trained on the first 3,000
distinct STS-B train sentences, and the evaluation and recipe tests read a few rows of each set. Sources and
licences: tests/data/mini/README.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).parent / "mini"


def head_lines(source: Path, target: Path, keep: Callable[[str], bool]) -> None:
    """Copy ``source``'s lines to ``target`` up to the first that ``keep`` refuses."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, encoding="utf-8") as f, open(target, "w", encoding="utf-8", newline="") as out:
        for line in f:
            if not keep(line):
                break
            out.write(line)


def first(n: int) -> Callable[[str], bool]:
    """A ``keep`` for the first ``n`` lines."""
    counter = iter(range(n))
    return lambda _: next(counter, None) is not None


def main(data: Path) -> None:
    seen: set[str] = set()

    def until_3000_sentences(line: str) -> bool:
        seen.add(json.loads(line)["sentence1"])
        return len(seen) <= 3000

    head_lines(data / "sts/stsb-train.jsonl", OUT / "sts/stsb-train.jsonl", until_3000_sentences)
    for split in ("dev", "test"):
        head_lines(data / f"sts/stsb-{split}.jsonl", OUT / f"sts/stsb-{split}.jsonl", first(200))
    head_lines(data / "nli/snli-train-triplets.jsonl", OUT / "nli/snli-train-triplets.jsonl", first(200))

    for split, per_intent in (("train", 4), ("test", 2)):
        counts: dict[str, int] = {}
        rows = []
        for line in open(data / f"classification/banking77/{split}.jsonl", encoding="utf-8"):
            label = json.loads(line)["label"]
            if counts.get(label, 0) < per_intent:
                counts[label] = counts.get(label, 0) + 1
                rows.append(line)
        (OUT / "classification/banking77").mkdir(parents=True, exist_ok=True)
        (OUT / f"classification/banking77/{split}.jsonl").write_text("".join(rows), encoding="utf-8")

    scifact, target = data / "retrieval/scifact", OUT / "retrieval/scifact"
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    queries = [json.loads(line) for line in open(scifact / "queries.jsonl", encoding="utf-8")]
    wanted_docs: set[str] = set()
    kept_queries: set[str] = set()
    for split in ("train", "test"):
        lines = open(scifact / f"qrels/{split}.tsv", encoding="utf-8", newline="").read().splitlines(keepends=True)
        judged = {line.split("\t")[0] for line in lines[1:]}
        chosen = [q["_id"] for q in queries if q["_id"] in judged][:40]
        kept = [line for line in lines[1:] if line.split("\t")[0] in chosen]
        (target / f"qrels/{split}.tsv").write_text(lines[0] + "".join(kept), encoding="utf-8", newline="")
        kept_queries |= set(chosen)
        wanted_docs |= {line.split("\t")[1] for line in kept}
    (target / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries if q["_id"] in kept_queries), encoding="utf-8"
    )
    corpus, others = [], 0
    for line in open(scifact / "corpus.jsonl", encoding="utf-8"):
        doc_id = json.loads(line)["_id"]
        if doc_id in wanted_docs or others < 120:
            others += doc_id not in wanted_docs
            corpus.append(line)
    (target / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
