"""The sentence-transformers model against EchoEncoder, same settings and texts, in one run (texts/s).

Both now share the forward path: the template's prefix computed once and reused (outside training). 256 STS-B test
sentences, batch 32, default model; each arm warms up on 8 texts, then the best of ``--repeats`` timings counts.
Writes ``benchmarks/results/st_forward.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from echo_embeddings import EchoEncoder, sentence_transformer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def best_rate(encode, texts: list[str], repeats: int) -> float:
    encode(texts[:8])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "st_forward.json")
    args = parser.parse_args()
    with open(DATA / "sts" / "stsb-test.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["sentence1"] for line in f][: args.texts]
    encoder = EchoEncoder.from_pretrained()
    model = sentence_transformer()
    vectors = (encoder.encode(texts[:32]), model.encode(texts[:32], batch_size=32))
    agreement = float(((vectors[0] * vectors[1]).sum(1)).min())
    rates = {
        "EchoEncoder.encode": best_rate(lambda t: encoder.encode(t, batch_size=32), texts, args.repeats),
        "SentenceTransformer.encode": best_rate(lambda t: model.encode(t, batch_size=32), texts, args.repeats),
    }
    result = {"texts": len(texts), "batch_size": 32, "texts_per_second": rates, "min_cosine_between_them": agreement,
              "st_vs_encoder": rates["SentenceTransformer.encode"] / rates["EchoEncoder.encode"]}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
