"""How much of each SciFact abstract retrieval uses: development claims against abstracts cut to N tokens.

The recipe trains on sequences cut to 128 tokens, while 97% of SciFact's abstracts are longer (median 298 of the
default model's tokens) and every evaluation reads them whole. This reads the recipe's development claims (the
162 SciFact train claims held out of its mix) against their cited abstracts plus 1,000 others (seed 0), nDCG@10,
with each abstract cut to 64, 128, 256 tokens and whole, for the default model and all-MiniLM-L6-v2 (its own word
pieces; it reads at most 256). A model that gains little past 128 tokens has not learnt to use the rest of an
abstract: longer training sequences are then the arm to run.

Development data only. Writes ``docs/results/recipe/doc-tokens.json`` and ``doc-tokens.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from finetune import DATA, ROOT
from peer import DEFAULT, PEER, PeerEncoder

from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.training.recipe import scifact_dev_queries

CUTS = (64, 128, 256, None)
"""Tokens of each abstract read; None: the whole abstract (what every evaluation reads)."""
OTHERS = 1000
"""Abstracts besides the cited ones."""


def readings(name: str, args: argparse.Namespace) -> dict[str, float]:
    """nDCG@10 of the development claims for each cut of the documents, by cut."""
    data = args.data / "retrieval" / "scifact"
    dev = scifact_dev_queries(args.data)
    scores = {}
    if name == PEER:
        peer = PeerEncoder()
        for cut in CUTS:
            peer.model.max_seq_length = min(cut or 256, 256)
            scores[str(cut or "whole")] = _ndcg([Arm(peer)], data, dev)  # type: ignore[arg-type]
        return scores
    encoder = EchoEncoder.from_pretrained(device=args.device, dtype=args.dtype)
    for cut in CUTS:
        reading = encoder if cut is None else encoder.with_settings(max_text_tokens=cut)
        scores[str(cut or "whole")] = _ndcg([Arm(reading)], data, dev)
    return scores


def _ndcg(arms: list[Arm], data: Path, dev: set[str]) -> float:
    results = evaluate_retrieval(arms, data, "train", None, OTHERS, 0, only=dev)
    return next(r.score for r in results if r.metric == "ndcg@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the evaluation data folder")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "recipe")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16"], help="the echo readings' weights"
    )
    args = parser.parse_args()
    results: dict = {"command": shlex.join(["python", "benchmarks/doc_tokens.py", *sys.argv[1:]]), "readings": {}}
    results.update(device=args.device, dtype=args.dtype, others=OTHERS)
    for name in (DEFAULT, PEER):
        start = time.perf_counter()
        results["readings"][name] = readings(name, args)
        print(name, results["readings"][name], f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "doc-tokens.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    header = " | ".join(f"{cut} tokens" if cut else "whole" for cut in CUTS)
    lines = [
        f"{args.device}, {args.dtype} (the peer float32). Command: `{results['command']}`",
        "",
        f"SciFact development claims (162) against their abstracts and {OTHERS:,} others, nDCG@10, each abstract cut "
        "to N tokens (the peer's word pieces, at most 256).",
        "",
        f"| reading | {header} |",
        "|---|" + "---:|" * len(CUTS),
    ]
    for name, scores in results["readings"].items():
        lines.append(f"| {name} | " + " | ".join(f"{score:.1f}" for score in scores.values()) + " |")
    (args.out / "doc-tokens.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
