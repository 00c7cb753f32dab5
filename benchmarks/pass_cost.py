"""A forward pass's fixed cost in padded tokens, and what cutting batches by it buys, in one run.

1. Times ``encode`` of k equal-length texts in one pass for k in 1..32 and three lengths, and fits
   ``seconds = per_pass + per_token * padded_tokens``: ``per_pass / per_token`` is the cost of one more pass in
   tokens, the value ``echo_embeddings.encoder.PASS_COST_TOKENS`` holds for this device type.
2. Embeds 256 STS-B test sentences in one call and in calls of 32 (what the server's dynamic batcher does with 32
   clients), with batches filled in turn and cut by the pass cost just measured.

Default model, CPU. Writes ``benchmarks/results/pass_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import echo_embeddings.encoder as encoder_module
from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.sts import load_sts

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def seconds(run, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def fit_pass_cost(encoder: EchoEncoder) -> dict:
    rows = []
    prefix = len(encoder.template_tokenizer.shared_prefix())  # computed once, not in the passes timed
    for words in (8, 24, 64):
        text = " ".join(["word"] * words)
        for k in (1, 2, 4, 8, 16, 32):
            texts = [text] * k
            tokens = k * (len(encoder.template_tokenizer([text])[0].input_ids) - prefix)
            rows.append((tokens, seconds(lambda t=texts, k=k: encoder.encode(t, batch_size=k))))
    tokens, times = np.array(rows, dtype=float).T
    (per_pass, per_token), *_ = np.linalg.lstsq(np.stack([np.ones_like(tokens), tokens], 1), times, rcond=None)
    return {"per_pass_s": per_pass, "per_token_s": per_token, "pass_cost_tokens": per_pass / per_token,
            "samples": [{"padded_tokens": int(n), "seconds": s} for n, s in rows]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pass_cost.json")
    args = parser.parse_args()
    encoder = EchoEncoder.from_pretrained()
    encoder.encode(["warm up"] * 8)
    fit = fit_pass_cost(encoder)
    print(f"pass cost: {fit['pass_cost_tokens']:.0f} tokens ({1000 * fit['per_pass_s']:.1f} ms per pass)")
    texts, _, _ = load_sts(DATA / "sts" / "stsb-test.jsonl", 256)
    in_calls_of_32 = lambda: [encoder.encode(texts[i : i + 32], batch_size=32) for i in range(0, len(texts), 32)]  # noqa: E731
    in_use = dict(encoder_module.PASS_COST_TOKENS)
    measured = {encoder.device.type: round(fit["pass_cost_tokens"])}
    rates = {}
    for name, pass_costs in (("filled in turn", {}), ("cut by the measured pass cost", measured)):
        encoder_module.PASS_COST_TOKENS = pass_costs
        rates[f"one call, {name}"] = len(texts) / seconds(lambda: encoder.encode(texts, batch_size=32), 2)
        rates[f"calls of 32, {name}"] = len(texts) / seconds(in_calls_of_32, 2)
    encoder_module.PASS_COST_TOKENS = in_use
    result = {"device": str(encoder.device), "pass_cost_in_code": in_use, "fit": fit, "texts_per_second": rates}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(rates, indent=2))


if __name__ == "__main__":
    main()
