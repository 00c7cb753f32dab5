"""``python -m echo_embeddings.demo``: echo vs classical embeddings on sentences that share their first half.

Each query has a paraphrase and a distractor that repeats the query's first half word for word but then says the
opposite. A causal LM's states over the shared words are identical whatever follows, so classical mean pooling
finds the distractor closest; echo pools a second copy whose states have read the whole text. Three readings: the
untrained base model, classical and echo (zero-shot), and the library's default, the same model fine-tuned.
"""

from __future__ import annotations

import argparse

from .encoder import EchoEncoder
from .shipped import BASE_MODEL

TRIPLES = [
    (
        "The new phone has a great camera, but its battery dies before the end of the day.",
        "Its camera is excellent, although the battery of this new phone cannot last a whole day.",
        "The new phone has a great camera, and its battery easily lasts for two full days.",
    ),
    (
        "We went to the beach on Sunday, but it rained so hard that we stayed in the car all afternoon.",
        "On Sunday we drove to the seaside, yet heavy rain kept us inside the car for the whole afternoon.",
        "We went to the beach on Sunday, and the sun was shining so we swam in the sea all afternoon.",
    ),
    (
        "The team trained hard all season, yet they lost every single match in the tournament.",
        "Despite a season of intense training, the team was defeated in all of its tournament games.",
        "The team trained hard all season, and they won the tournament without losing a single match.",
    ),
    (
        "Our flight was delayed by three hours, so we missed the connection and slept at the airport.",
        "Because of a three-hour delay, we lost our connecting flight and spent the night in the terminal.",
        "Our flight was delayed by three hours, but the airline rebooked us and we arrived home on time.",
    ),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--model", default=None, help="the trained model (default: the library's default model)")
    parser.add_argument(
        "--base", default=BASE_MODEL, help=f"the untrained model read zero-shot (default: {BASE_MODEL})"
    )
    args = parser.parse_args(argv)

    trained = EchoEncoder.from_pretrained(args.model)
    zero_shot = EchoEncoder.from_pretrained(args.base)
    print(f"zero-shot: {zero_shot.model_name}\ntrained:   {trained.model_name}\n")
    print(f"{'query':<48} {'reading':<26} {'cos(paraphrase)':>16} {'cos(distractor)':>16}  ranks first")
    encoders = {
        "classical, zero-shot": zero_shot.with_settings(template="classical"),
        f"{zero_shot.template.name}, zero-shot": zero_shot,
        f"{trained.template.name}, trained": trained,
    }
    wins = dict.fromkeys(encoders, 0)
    for query, paraphrase, distractor in TRIPLES:
        for name, encoder in encoders.items():
            q, pos, neg = encoder.encode([query, paraphrase, distractor])
            sim_pos, sim_neg = float(q @ pos), float(q @ neg)
            wins[name] += sim_pos > sim_neg
            first = "paraphrase" if sim_pos > sim_neg else "distractor"
            print(f"{_short(query):<48} {name:<26} {sim_pos:>16.3f} {sim_neg:>16.3f}  {first}")
        print()
    for name, won in wins.items():
        print(f"{name:<26} ranks the paraphrase first for {won} of {len(TRIPLES)} queries")


def _short(text: str, width: int = 46) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    main()
