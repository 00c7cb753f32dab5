"""Quality against vector size: dimensions (Matryoshka truncation) and precision (float32, int8, binary), for the
untrained base model read zero-shot, the library's default (trained) model and any trained model folder given.

Each model embeds STS-B test (all pairs) and SciFact (50 judged test claims against their abstracts plus 100
others, 50q/151d) once, in float32; each size is then computed from those vectors as the library computes it
(``truncate_dim``: the first N dimensions, unit length again; ``precision``: sentence-transformers'
``quantize_embeddings``, int8 ranges from 500 STS-B train sentences). Similarities are what an index of that type
ranks by: cosine for float32 and int8, Hamming distance for binary. Index size: bytes a vector.

Writes ``docs/results/dims/``: results.json, results.md and dims.png.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
from finetune import DATA, ROOT

from echo_embeddings import BASE_MODEL, EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.evaluation.sts import evaluate_sts, load_sts
from echo_embeddings.quantization import ranges_of, shrink

DIMS = (576, 384, 256, 128, 64, 32)
PRECISIONS = ("float32", "int8", "binary")
BYTES = {"float32": lambda d: 4 * d, "int8": lambda d: d, "binary": lambda d: (d + 7) // 8}


class SizedArm(Arm):
    """An arm reading an encoder's float vectors (each text embedded once per form) at a size and precision, as
    the index of that precision compares them: int8 codes as numbers, binary codes as +-1 (Hamming order)."""

    def __init__(self, encoder: EchoEncoder, cache: dict, dim: int, precision: str, ranges: np.ndarray) -> None:
        super().__init__(encoder)
        self.cache, self.dim, self.precision = cache, dim, precision
        self.sized = encoder.config.replace(truncate_dim=dim, precision=precision, quantization_ranges=ranges.tolist())

    @property
    def name(self) -> str:
        return f"{self.dim}/{self.precision}"

    def encode(self, texts: list[str], *, query: bool = False, show_progress: bool = False) -> np.ndarray:
        key = (tuple(texts), query)
        if key not in self.cache:
            self.cache[key] = self.encoder.encode(texts, query=query, show_progress=show_progress)
        codes = shrink(self.cache[key].copy(), self.sized)
        if self.precision == "binary":
            return np.unpackbits(codes.view(np.uint8), axis=1)[:, : self.dim].astype(np.float32) * 2 - 1
        return codes.astype(np.float32)


def measure(encoder: EchoEncoder, data: Path) -> list[dict]:
    cache: dict = {}
    calibration = encoder.encode(load_sts(data / "sts" / "stsb-train.jsonl", 500)[0])
    rows = []
    for dim in DIMS:
        ranges = np.array(ranges_of(shrink(calibration.copy(), encoder.config.replace(truncate_dim=dim))))
        for precision in PRECISIONS:
            arm = [SizedArm(encoder, cache, dim, precision, ranges)]
            sts = evaluate_sts(arm, data / "sts" / "stsb-test.jsonl")[0].score
            scifact = evaluate_retrieval(arm, data / "retrieval" / "scifact", "test", 50, 100, 0)[0].score
            row = {"dim": dim, "precision": precision, "bytes": BYTES[precision](dim), "stsb": sts, "scifact": scifact}
            print(encoder.model_name, row, file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--models", nargs="*", default=[], help="trained model folders to measure as well")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "dims")
    args = parser.parse_args()
    readings = {"zero-shot": BASE_MODEL, "default (trained)": None, **{Path(m).name: m for m in args.models}}
    results = {"command": shlex.join(["python", "benchmarks/dims.py", *sys.argv[1:]]), "readings": {}}
    for name, model in readings.items():
        encoder = EchoEncoder.from_pretrained(model, device="cpu")
        results["readings"][name] = {"model": encoder.model_name, "rows": measure(encoder, args.data)}
    write(args.out, results)


def write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"CPU, fp32. Command: `{results['command']}`", ""]
    for name, reading in results["readings"].items():
        lines += [
            f"## {name}: `{reading['model']}`",
            "",
            "| dimensions | precision | bytes a vector | STS-B test | SciFact nDCG@10 (50q/151d) |",
            "|---:|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r['dim']} | {r['precision']} | {r['bytes']} | {r['stsb']:.1f} | {r['scifact']:.1f} |"
            for r in reading["rows"]
        ]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines), encoding="utf-8")
    plot(out / "dims.png", results)


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for name, reading in results["readings"].items():
        for precision, style in zip(PRECISIONS, ("-", "--", ":"), strict=True):
            rows = [r for r in reading["rows"] if r["precision"] == precision]
            for ax, key in zip(axes, ("stsb", "scifact"), strict=True):
                ax.plot([r["bytes"] for r in rows], [r[key] for r in rows], style, marker="o",
                        label=f"{name}, {precision}")  # fmt: skip
    for ax, title in zip(axes, ("STS-B test (Spearman)", "SciFact nDCG@10"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bytes a vector")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
